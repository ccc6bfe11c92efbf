//! One tracepoint program per file, as kunai does: each reads its own layout
//! from the configuration and emits `RawEvent`s only for abnormal facts.

mod exit;
mod http;
mod oom;
mod reset;
mod retransmit;
mod signal;
mod skb;
mod sock;
