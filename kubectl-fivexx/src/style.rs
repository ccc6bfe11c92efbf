//! How lines reach the terminal: colours only when a human is looking (a
//! terminal, `NO_COLOR` unset (https://no-color.org) and `TERM` not
//! `dumb`), and a closed pipe is not a failure.

use std::io::{IsTerminal, Write};

/// One line on stdout; a closed pipe (`| head`) is not worth a panic.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn allowed() -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    !no_color && !dumb
}

pub fn stdout_colour() -> bool {
    allowed() && std::io::stdout().is_terminal()
}

pub fn stderr_colour() -> bool {
    allowed() && std::io::stderr().is_terminal()
}

/// Paints text with an SGR code when enabled.
#[derive(Clone, Copy, Debug)]
pub struct Painter {
    pub enabled: bool,
}

impl Painter {
    /// For lines on stdout.
    pub fn stdout() -> Painter {
        Painter {
            enabled: stdout_colour(),
        }
    }

    /// For what is drawn on stderr (the live bursts, warnings).
    pub fn stderr() -> Painter {
        Painter {
            enabled: stderr_colour(),
        }
    }

    fn paint(self, code: &str, s: &str) -> String {
        if self.enabled {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    pub fn red(self, s: &str) -> String {
        self.paint("31", s)
    }

    pub fn yellow(self, s: &str) -> String {
        self.paint("33", s)
    }

    pub fn green(self, s: &str) -> String {
        self.paint("32", s)
    }

    pub fn bold(self, s: &str) -> String {
        self.paint("1", s)
    }

    pub fn dim(self, s: &str) -> String {
        self.paint("2", s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_painter_leaves_text_alone() {
        let p = Painter { enabled: false };
        assert_eq!(p.red("502"), "502");
        let p = Painter { enabled: true };
        assert_eq!(p.red("502"), "\x1b[31m502\x1b[0m");
    }
}
