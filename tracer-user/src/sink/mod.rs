//! Where the pump's events go: printed on this node (`trace`) or published
//! to the connected clients (`serve`).

pub mod print;
pub mod publish;

pub use print::{Filter, LineFormat, PrintError, Printer};
pub use publish::Publisher;
