//! The network half of a kernel event: TCP states, addresses, the errors
//! sockets report and the reasons the kernel gives for a RST. Each is a
//! type, so that the engine tests `Errno::ECONNREFUSED` rather than `111`
//! and the numbers live in one table.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// TCP states as Linux numbers them (include/net/tcp_states.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
}

impl TcpState {
    pub fn from_kernel(v: u8) -> Option<TcpState> {
        Some(match v {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynRecv,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Close,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            12 => TcpState::NewSynRecv,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN_SENT",
            TcpState::SynRecv => "SYN_RECV",
            TcpState::FinWait1 => "FIN_WAIT1",
            TcpState::FinWait2 => "FIN_WAIT2",
            TcpState::TimeWait => "TIME_WAIT",
            TcpState::Close => "CLOSE",
            TcpState::CloseWait => "CLOSE_WAIT",
            TcpState::LastAck => "LAST_ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::NewSynRecv => "NEW_SYN_RECV",
        }
    }

    /// The errno a connection reset in this state reports to the
    /// application (tcp_reset() in net/ipv4/tcp_input.c); none for a socket
    /// already closed.
    pub fn errno_on_reset(self) -> Option<Errno> {
        match self {
            TcpState::SynSent => Some(Errno::ECONNREFUSED),
            TcpState::CloseWait => Some(Errno::EPIPE),
            TcpState::Close => None,
            _ => Some(Errno::ECONNRESET),
        }
    }
}

impl fmt::Display for TcpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Source and destination as the socket sees them: for a client, source is
/// the local end; for `send_reset` of a closed port, source is us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FourTuple {
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
}

impl fmt::Display for FourTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {}",
            std::net::SocketAddr::new(self.saddr, self.sport),
            std::net::SocketAddr::new(self.daddr, self.dport)
        )
    }
}

/// An error a socket reported (`sk_err`, positive), as Linux numbers it on
/// x86-64 and arm64. The numbers are here and nowhere else: the agent
/// decodes into this type and the engine trusts it. Serialized as the
/// bare number, as the JSON schema and the capture layout always had it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Errno(i32);

impl Errno {
    pub const EPIPE: Errno = Errno(32);
    pub const ENETUNREACH: Errno = Errno(101);
    pub const ECONNABORTED: Errno = Errno(103);
    pub const ECONNRESET: Errno = Errno(104);
    pub const ETIMEDOUT: Errno = Errno(110);
    pub const ECONNREFUSED: Errno = Errno(111);
    pub const EHOSTUNREACH: Errno = Errno(113);

    /// The errno the kernel reported, sign dropped (some tracepoints
    /// carry `-err`); `None` for 0, which is no error.
    pub fn from_kernel(v: i32) -> Option<Errno> {
        let v = v.checked_abs()?;
        (v != 0).then_some(Errno(v))
    }

    /// An errno as older agents and captures wrote it: a bare number, 0
    /// for none.
    pub fn deserialize_kernel<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Errno>, D::Error> {
        Ok(Option::<i32>::deserialize(d)?.and_then(Errno::from_kernel))
    }

    /// The number, for display next to its name.
    pub fn raw(self) -> i32 {
        self.0
    }

    /// The short name (`ECONNREFUSED`), or `E?` for one no socket of ours
    /// reports.
    pub fn name(self) -> &'static str {
        match self {
            Errno::EPIPE => "EPIPE",
            Errno::ENETUNREACH => "ENETUNREACH",
            Errno::ECONNABORTED => "ECONNABORTED",
            Errno::ECONNRESET => "ECONNRESET",
            Errno::ETIMEDOUT => "ETIMEDOUT",
            Errno::ECONNREFUSED => "ECONNREFUSED",
            Errno::EHOSTUNREACH => "EHOSTUNREACH",
            _ => "E?",
        }
    }

    /// The connect was refused: a RST to the SYN, or ICMP/REJECT.
    pub fn is_refused(self) -> bool {
        self == Errno::ECONNREFUSED
    }

    /// The kernel's SYN (or data) retries ran out.
    pub fn is_timeout(self) -> bool {
        self == Errno::ETIMEDOUT
    }

    /// No route to the host or network (ICMP unreachable).
    pub fn is_unreachable(self) -> bool {
        matches!(self, Errno::EHOSTUNREACH | Errno::ENETUNREACH)
    }

    /// An established connection was reset (or written after the peer's
    /// reset: EPIPE).
    pub fn is_reset(self) -> bool {
        matches!(self, Errno::ECONNRESET | Errno::EPIPE)
    }

    /// Refused and timed out say the most about a connect: a later, vaguer
    /// error on the same socket does not replace them.
    pub fn is_decisive(self) -> bool {
        self.is_refused() || self.is_timeout()
    }
}

impl<'de> Deserialize<'de> for Errno {
    /// A number; 0 is refused, as no errno (a field that may hold 0 reads
    /// through [`Errno::deserialize_kernel`]).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i32::deserialize(d)?;
        Errno::from_kernel(v).ok_or_else(|| serde::de::Error::custom("errno 0 is no error"))
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Why the kernel sent a RST (`enum sk_rst_reason`, 6.10+), by the name
/// the tracepoint's format prints: the agent maps the number through the
/// running kernel's own table, so a reason this build does not know
/// arrives as `Other` with the kernel's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ResetReason {
    /// No socket for the segment: a closed port refusing a SYN.
    NoSocket,
    NotSpecified,
    Other(Box<str>),
}

impl ResetReason {
    /// The kernel's name, as the tracepoint prints it.
    pub fn as_str(&self) -> &str {
        match self {
            ResetReason::NoSocket => "NO_SOCKET",
            ResetReason::NotSpecified => "NOT_SPECIFIED",
            ResetReason::Other(s) => s,
        }
    }

    /// From the kernel's name.
    pub fn from_name(s: &str) -> ResetReason {
        match s {
            "NO_SOCKET" => ResetReason::NoSocket,
            "NOT_SPECIFIED" => ResetReason::NotSpecified,
            other => ResetReason::Other(other.into()),
        }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResetReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResetReason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(ResetReason::from_name(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_errno_follows_tcp_reset() {
        assert_eq!(
            TcpState::SynSent.errno_on_reset(),
            Some(Errno::ECONNREFUSED)
        );
        assert_eq!(TcpState::CloseWait.errno_on_reset(), Some(Errno::EPIPE));
        assert_eq!(
            TcpState::Established.errno_on_reset(),
            Some(Errno::ECONNRESET)
        );
        assert_eq!(TcpState::Close.errno_on_reset(), None);
    }

    #[test]
    fn errno_from_the_kernel_drops_the_sign_and_zero() {
        assert_eq!(Errno::from_kernel(-111), Some(Errno::ECONNREFUSED));
        assert_eq!(Errno::from_kernel(110), Some(Errno::ETIMEDOUT));
        assert_eq!(Errno::from_kernel(0), None);
        assert_eq!(Errno::from_kernel(i32::MIN), None);
        assert_eq!(Errno::ECONNREFUSED.to_string(), "ECONNREFUSED (111)");
        assert_eq!(Errno::from_kernel(5).map(Errno::name), Some("E?"));
    }

    #[test]
    fn reset_reasons_keep_the_kernel_name() {
        for name in ["NO_SOCKET", "NOT_SPECIFIED", "TCP_ABORT_ON_CLOSE"] {
            let r = ResetReason::from_name(name);
            assert_eq!(r.as_str(), name);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(serde_json::from_str::<ResetReason>(&json).unwrap(), r);
        }
        assert_eq!(ResetReason::from_name("NO_SOCKET"), ResetReason::NoSocket);
    }
}
