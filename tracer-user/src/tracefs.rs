//! Tracepoint layouts, read from tracefs `format` files at start-up.
//!
//! Layouts move between kernels (`tcp_send_reset` was reshaped in 6.10) and
//! event IDs differ even between builds of one version, so nothing here is
//! compiled in: every offset comes from the running kernel's own description.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Error;

/// Where tracefs usually lives, newest first.
pub const TRACEFS_CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// One `field:` line of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatField {
    pub c_type: String,
    pub name: String,
    pub offset: u16,
    pub size: u16,
    pub signed: bool,
}

/// A parsed `events/<category>/<name>/format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracepointFormat {
    pub name: String,
    pub id: Option<u32>,
    pub fields: Vec<FormatField>,
    pub print_fmt: String,
}

impl TracepointFormat {
    /// Parses the text of a format file. `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<TracepointFormat, Error> {
        let bad = |line: usize, why: &str| Error::MalformedFormat {
            file: source.to_string(),
            detail: format!("line {line}: {why}"),
        };
        let mut name = None;
        let mut id = None;
        let mut fields = Vec::new();
        let mut print_fmt = String::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let trimmed = line.trim();
            if let Some(v) = trimmed.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = trimmed.strip_prefix("ID:") {
                id = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| bad(line_no, "ID is not a number"))?,
                );
            } else if let Some(v) = trimmed.strip_prefix("print fmt:") {
                print_fmt = v.trim().to_string();
            } else if trimmed.starts_with("field:") {
                fields.push(
                    parse_field(trimmed).ok_or_else(|| bad(line_no, "unreadable field line"))?,
                );
            }
        }
        let name = name.ok_or_else(|| bad(1, "no name: line"))?;
        if fields.is_empty() {
            return Err(bad(1, "no field: lines"));
        }
        Ok(TracepointFormat {
            name,
            id,
            fields,
            print_fmt,
        })
    }

    pub fn field(&self, name: &str) -> Option<&FormatField> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The `__print_symbolic(REC-><field>, { N, "NAME" }, ...)` table for a
    /// field: how this kernel names the values (reset reasons, for example).
    pub fn symbolic_names(&self, field: &str) -> BTreeMap<u64, String> {
        let mut out = BTreeMap::new();
        let needle = format!("__print_symbolic(REC->{field},");
        let Some(start) = self.print_fmt.find(&needle) else {
            return out;
        };
        let rest = &self.print_fmt[start + needle.len()..];
        // The table ends at the first `)` outside braces.
        let mut depth = 0usize;
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth = depth.saturating_sub(1),
                ')' if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        for entry in rest[..end].split('{').skip(1) {
            let entry = entry.split('}').next().unwrap_or("");
            let mut parts = entry.splitn(2, ',');
            let (Some(num), Some(label)) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(num) = num.trim().parse::<u64>() else {
                continue; // symbolic constants such as TCP_SYN_SENT
            };
            let label = label.trim().trim_matches('"').to_string();
            if !label.is_empty() {
                out.insert(num, label);
            }
        }
        out
    }
}

/// `field:<type> <name>[N];\toffset:O;\tsize:S;\tsigned:B;`
fn parse_field(line: &str) -> Option<FormatField> {
    let mut decl = None;
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for part in line.split(';') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("field:") {
            decl = Some(v.trim());
        } else if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse::<u16>().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse::<u16>().ok();
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = v.trim() == "1";
        }
    }
    let decl = decl?;
    // The name is the last identifier, before any array suffix.
    let (c_type, raw_name) = decl.rsplit_once(' ')?;
    let name = raw_name.split('[').next()?.trim_start_matches('*');
    if name.is_empty() {
        return None;
    }
    Some(FormatField {
        c_type: c_type.trim().to_string(),
        name: name.to_string(),
        offset: offset?,
        size: size?,
        signed,
    })
}

/// A tracefs mount (or a directory laid out like one, as in the fixtures).
#[derive(Clone, Debug)]
pub struct Tracefs {
    root: PathBuf,
}

impl Tracefs {
    pub fn at(root: impl Into<PathBuf>) -> Tracefs {
        Tracefs { root: root.into() }
    }

    /// Finds the mounted tracefs; when none is mounted and we are allowed to
    /// (root), mounts it at /sys/kernel/tracing.
    pub fn discover(may_mount: bool) -> Result<Tracefs, Error> {
        for c in TRACEFS_CANDIDATES {
            if Path::new(c).join("events").is_dir() {
                return Ok(Tracefs::at(c));
            }
        }
        if may_mount {
            let target = TRACEFS_CANDIDATES[0];
            let ok = std::process::Command::new("mount")
                .args(["-t", "tracefs", "nodev", target])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok && Path::new(target).join("events").is_dir() {
                tracing::info!("mounted tracefs at {target}");
                return Ok(Tracefs::at(target));
            }
        }
        Err(Error::NoTracefs)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn format_path(&self, category: &str, name: &str) -> PathBuf {
        self.root
            .join("events")
            .join(category)
            .join(name)
            .join("format")
    }

    /// Reads one format file. A missing tracepoint is `Ok(None)`: the caller
    /// degrades that hook; an unreadable or malformed file is an error.
    pub fn format(&self, category: &str, name: &str) -> Result<Option<TracepointFormat>, Error> {
        let path = self.format_path(category, name);
        match std::fs::read_to_string(&path) {
            Ok(text) => TracepointFormat::parse(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                what: path.display().to_string(),
                source: e,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "name: tcp_send_reset\nID: 1347\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;\n\tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;\n\nprint fmt: \"x\", __print_symbolic(REC->reason, { 0, \"NOT_SPECIFIED\" }, { 1, \"NO_SOCKET\" }), __print_symbolic(REC->state, { TCP_ESTABLISHED, \"TCP_ESTABLISHED\" })\n";

    #[test]
    fn parses_fields_arrays_and_pointers() {
        let f = TracepointFormat::parse(SAMPLE, "sample").unwrap();
        assert_eq!(f.name, "tcp_send_reset");
        assert_eq!(f.id, Some(1347));
        assert_eq!(f.field("skaddr").unwrap().offset, 16);
        let saddr = f.field("saddr").unwrap();
        assert_eq!((saddr.offset, saddr.size), (32, 28));
        assert_eq!(f.field("reason").unwrap().c_type, "enum sk_rst_reason");
    }

    #[test]
    fn reads_symbolic_tables() {
        let f = TracepointFormat::parse(SAMPLE, "sample").unwrap();
        let names = f.symbolic_names("reason");
        assert_eq!(names.get(&1).map(String::as_str), Some("NO_SOCKET"));
        assert_eq!(names.len(), 2);
        assert!(f.symbolic_names("state").is_empty());
    }

    #[test]
    fn malformed_files_name_the_file() {
        let err =
            TracepointFormat::parse("name: x\nfield:int a;\toffset:zz;", "/t/format").unwrap_err();
        assert!(err.to_string().contains("/t/format"), "{err}");
        assert!(TracepointFormat::parse("", "/t/empty").is_err());
    }
}
