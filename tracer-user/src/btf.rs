//! Kernel struct member offsets from `/sys/kernel/btf/vmlinux`.
//!
//! Some facts are not in any tracepoint (the exit code, whether a thread
//! group died before 6.18, the TCP state of a reset socket), so the programs
//! read them from kernel structs. Their offsets change with every build, so
//! they are looked up in the running kernel's BTF, never compiled in.
//! aya-obj parses BTF but keeps member access private, so this is a small,
//! bounds-checked reader of just what we need: struct and union members.

use std::collections::HashMap;

use crate::Error;

/// Why a BTF blob could not be read.
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BtfError {
    #[error("truncated header")]
    TruncatedHeader,
    #[error("bad magic (not little-endian BTF)")]
    BadMagic,
    #[error("type section out of bounds")]
    TypesOutOfBounds,
    #[error("string section out of bounds")]
    StringsOutOfBounds,
    #[error("truncated type record")]
    TruncatedType,
    #[error("unknown BTF kind {0}")]
    UnknownKind(u32),
}

const BTF_MAGIC: u16 = 0xeb9f;

const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;

#[derive(Clone, Debug)]
struct Member {
    name: String,
    type_id: u32,
    bit_offset: u32,
    /// Bits of a bitfield member, 0 for a whole member.
    bitfield_size: u32,
}

/// What a non-struct type is, for describing tracepoint prototypes.
#[derive(Clone, Debug)]
enum Named {
    /// INT, STRUCT, UNION, ENUM, ENUM64, FWD, TYPEDEF: `kind` and name.
    Leaf(&'static str, String),
    /// PTR to the type.
    Ptr(u32),
    /// FUNC_PROTO: parameter type ids.
    Proto(Vec<u32>),
}

#[derive(Clone, Debug)]
struct Composite {
    members: Vec<Member>,
}

/// The struct and union types of a BTF blob, by id and by name.
#[derive(Debug, Default)]
pub struct KernelBtf {
    composites: HashMap<u32, Composite>,
    by_name: HashMap<String, u32>,
    /// id -> referenced type id for typedef/volatile/const/restrict/type_tag,
    /// so member types can be resolved to the struct they name.
    aliases: HashMap<u32, u32>,
    /// Types needed to describe `btf_trace_<tracepoint>` prototypes.
    named: HashMap<u32, Named>,
    /// `btf_trace_<tracepoint>` typedef ids, by tracepoint name.
    trace_typedefs: HashMap<String, u32>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u32(&mut self) -> Option<u32> {
        let b = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        if self.pos.checked_add(n)? > self.buf.len() {
            return None;
        }
        self.pos += n;
        Some(())
    }
}

impl KernelBtf {
    pub fn from_sys_fs() -> Result<KernelBtf, Error> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|e| Error::Io {
            what: path.to_string(),
            source: e,
        })?;
        Ok(KernelBtf::parse(&data)?)
    }

    /// Parses little-endian BTF. Never panics on arbitrary input.
    pub fn parse(data: &[u8]) -> Result<KernelBtf, BtfError> {
        let mut c = Cursor { buf: data, pos: 0 };
        let magic_ver = c.u32().ok_or(BtfError::TruncatedHeader)?;
        if (magic_ver & 0xffff) as u16 != BTF_MAGIC {
            return Err(BtfError::BadMagic);
        }
        let hdr_len = c.u32().ok_or(BtfError::TruncatedHeader)? as usize;
        let type_off = c.u32().ok_or(BtfError::TruncatedHeader)? as usize;
        let type_len = c.u32().ok_or(BtfError::TruncatedHeader)? as usize;
        let str_off = c.u32().ok_or(BtfError::TruncatedHeader)? as usize;
        let str_len = c.u32().ok_or(BtfError::TruncatedHeader)? as usize;
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            data.get(start..start.checked_add(len)?)
        };
        let types = section(type_off, type_len).ok_or(BtfError::TypesOutOfBounds)?;
        let strings = section(str_off, str_len).ok_or(BtfError::StringsOutOfBounds)?;
        let name_at = |off: u32| -> String {
            let Some(rest) = strings.get(off as usize..) else {
                return String::new();
            };
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end]).into_owned()
        };

        let mut out = KernelBtf::default();
        let mut t = Cursor { buf: types, pos: 0 };
        let mut id = 0u32;
        while t.pos < types.len() {
            id += 1;
            let truncated = BtfError::TruncatedType;
            let name_off = t.u32().ok_or(truncated)?;
            let info = t.u32().ok_or(truncated)?;
            let size_or_type = t.u32().ok_or(truncated)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            match kind {
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let m_name = t.u32().ok_or(truncated)?;
                        let m_type = t.u32().ok_or(truncated)?;
                        let m_off = t.u32().ok_or(truncated)?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (m_off & 0x00ff_ffff, m_off >> 24)
                        } else {
                            (m_off, 0)
                        };
                        members.push(Member {
                            name: name_at(m_name),
                            type_id: m_type,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    let name = name_at(name_off);
                    let what = if kind == KIND_STRUCT {
                        "struct"
                    } else {
                        "union"
                    };
                    out.named.insert(id, Named::Leaf(what, name.clone()));
                    if !name.is_empty() {
                        out.by_name.entry(name).or_insert(id);
                    }
                    out.composites.insert(id, Composite { members });
                }
                1 => {
                    t.skip(4).ok_or(truncated)?;
                    out.named.insert(id, Named::Leaf("int", name_at(name_off)));
                }
                14 | 17 => t.skip(4).ok_or(truncated)?, // VAR, DECL_TAG
                3 => t.skip(12).ok_or(truncated)?,      // ARRAY
                6 | 19 => {
                    // ENUM (8 bytes a value), ENUM64 (12)
                    t.skip(if kind == 6 { 8 } else { 12 } * vlen)
                        .ok_or(truncated)?;
                    out.named.insert(id, Named::Leaf("enum", name_at(name_off)));
                }
                13 => {
                    let mut params = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        t.u32().ok_or(truncated)?;
                        params.push(t.u32().ok_or(truncated)?);
                    }
                    out.named.insert(id, Named::Proto(params));
                }
                15 => t.skip(12 * vlen).ok_or(truncated)?, // DATASEC
                8 => {
                    let name = name_at(name_off);
                    if let Some(tp) = name.strip_prefix("btf_trace_") {
                        out.trace_typedefs.insert(tp.to_string(), id);
                    }
                    out.named.insert(id, Named::Leaf("typedef", name));
                    out.aliases.insert(id, size_or_type);
                }
                9..=11 | 18 => {
                    // VOLATILE, CONST, RESTRICT, TYPE_TAG
                    out.aliases.insert(id, size_or_type);
                }
                2 => {
                    out.named.insert(id, Named::Ptr(size_or_type));
                }
                7 => {
                    out.named
                        .insert(id, Named::Leaf("struct", name_at(name_off)));
                }
                12 | 16 => {} // FUNC, FLOAT
                other => return Err(BtfError::UnknownKind(other)),
            }
        }
        Ok(out)
    }

    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..16 {
            match self.aliases.get(&id) {
                Some(&next) => id = next,
                None => break,
            }
        }
        id
    }

    /// Byte offset of `member` in struct `type_name`, looking through
    /// anonymous struct and union members as C does.
    pub fn member_offset(&self, type_name: &str, member: &str) -> Option<u32> {
        self.member_bits(type_name, member)
            .map(|(bits, _)| bits / 8)
    }

    /// Byte offset of a whole (not bitfield, byte-aligned) member.
    pub fn whole_member_offset(&self, type_name: &str, member: &str) -> Option<u32> {
        match self.member_bits(type_name, member)? {
            (bits, 0) if bits % 8 == 0 => Some(bits / 8),
            _ => None,
        }
    }

    /// Bit offset of `member` in struct `type_name` and its bitfield size
    /// (0 for a whole member).
    pub fn member_bits(&self, type_name: &str, member: &str) -> Option<(u32, u32)> {
        let id = *self.by_name.get(type_name)?;
        self.find_in(id, member, 0)
    }

    fn find_in(&self, id: u32, member: &str, depth: u32) -> Option<(u32, u32)> {
        self.find_member(id, member, depth)
            .map(|(bits, size, _)| (bits, size))
    }

    /// Bit offset, bitfield size and type id of `member` in type `id`.
    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<(u32, u32, u32)> {
        if depth > 8 {
            return None;
        }
        let comp = self.composites.get(&self.resolve(id))?;
        for m in &comp.members {
            if m.name == member {
                return Some((m.bit_offset, m.bitfield_size, m.type_id));
            }
        }
        for m in comp.members.iter().filter(|m| m.name.is_empty()) {
            if let Some((inner, size, ty)) = self.find_member(m.type_id, member, depth + 1) {
                return Some((m.bit_offset + inner, size, ty));
            }
        }
        None
    }

    /// Byte offset of a whole member reached through named members of
    /// nested structs (`tcp_sock` `inet_conn.icsk_ack.lrcvtime`, where
    /// `icsk_ack` is a member of an anonymous struct type), as C's
    /// `offsetof(struct tcp_sock, inet_conn.icsk_ack.lrcvtime)`.
    pub fn path_offset(&self, type_name: &str, path: &[&str]) -> Option<u32> {
        let mut id = *self.by_name.get(type_name)?;
        let mut bits = 0u32;
        for name in path {
            let (b, size, ty) = self.find_member(id, name, 0)?;
            if size != 0 {
                return None;
            }
            bits = bits.checked_add(b)?;
            id = ty;
        }
        bits.is_multiple_of(8).then_some(bits / 8)
    }

    /// The argument types of a tracepoint as the BTF form hands them to a
    /// program: the `btf_trace_<name>` prototype without its leading
    /// `void *__data`, each as C spells it without qualifiers
    /// (`struct sock *`, `int`, `enum skb_drop_reason`). None when the
    /// kernel's BTF has no such typedef (no tp_btf for it).
    pub fn tracepoint_args(&self, tracepoint: &str) -> Option<Vec<String>> {
        let typedef = *self.trace_typedefs.get(tracepoint)?;
        let Some(Named::Ptr(proto)) = self.named.get(&self.resolve(typedef)) else {
            return None;
        };
        let Some(Named::Proto(params)) = self.named.get(&self.resolve(*proto)) else {
            return None;
        };
        Some(
            params
                .iter()
                .skip(1)
                .map(|&p| self.describe(p, 0))
                .collect(),
        )
    }

    /// A type as C spells it, qualifiers dropped, typedefs kept by name.
    fn describe(&self, id: u32, depth: u32) -> String {
        if id == 0 {
            return "void".to_string();
        }
        if depth > 8 {
            return "?".to_string();
        }
        let mut cur = id;
        // Strip CONST/VOLATILE/RESTRICT/TYPE_TAG but stop at a typedef.
        for _ in 0..8 {
            match (self.named.get(&cur), self.aliases.get(&cur)) {
                (None, Some(&next)) => cur = next,
                _ => break,
            }
        }
        match self.named.get(&cur) {
            _ if cur == 0 => "void".to_string(),
            Some(Named::Ptr(to)) => format!("{} *", self.describe(*to, depth + 1)),
            Some(Named::Leaf("int" | "typedef", name)) => name.clone(),
            Some(Named::Leaf(kind, name)) => format!("{kind} {name}"),
            Some(Named::Proto(_)) => "fn".to_string(),
            None => "?".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a tiny BTF blob: struct outer { int a; struct { int b; }; }.
    fn sample() -> Vec<u8> {
        let strings = b"\0outer\0a\0b\0int\0".to_vec();
        let mut types = Vec::new();
        let mut push = |v: u32| types.extend_from_slice(&v.to_le_bytes());
        // id 1: int (name "int" at 11), size 4
        push(11);
        push(1 << 24);
        push(4);
        push(32);
        // id 2: anonymous struct { b at bit 0 }
        push(0);
        push((4 << 24) | 1);
        push(4);
        push(9);
        push(1);
        push(0);
        // id 3: struct outer { a at 0; anon at bit 64 }
        push(1);
        push((4 << 24) | 2);
        push(12);
        push(7);
        push(1);
        push(0);
        push(0);
        push(2);
        push(64);
        let mut out = Vec::new();
        let hdr = [
            (BTF_MAGIC as u32) | (1 << 16),
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ];
        for v in hdr {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = KernelBtf::parse(&sample()).unwrap();
        assert_eq!(btf.member_offset("outer", "a"), Some(0));
        assert_eq!(btf.member_offset("outer", "b"), Some(8));
        assert_eq!(btf.member_offset("outer", "zz"), None);
        assert_eq!(btf.member_offset("nope", "a"), None);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let blob = sample();
        for cut in 0..blob.len() {
            let _ = KernelBtf::parse(&blob[..cut]);
        }
        assert!(KernelBtf::parse(b"PNG").is_err());
    }

    #[test]
    fn reads_the_running_kernel_when_present() {
        let Ok(btf) = KernelBtf::from_sys_fs() else {
            eprintln!("SKIP: /sys/kernel/btf/vmlinux not readable on this machine");
            return;
        };
        let exit_code = btf.member_offset("task_struct", "exit_code");
        assert!(
            exit_code.is_some_and(|o| o > 0),
            "task_struct.exit_code not found"
        );
        assert!(btf.member_offset("signal_struct", "live").is_some());
        assert!(btf.member_offset("sock_common", "skc_state").is_some());
        // The idle-time stamps: one direct, one through two nested structs.
        let lrcv = btf.path_offset("tcp_sock", &["inet_conn", "icsk_ack", "lrcvtime"]);
        let inet_conn = btf.member_offset("tcp_sock", "inet_conn").unwrap();
        let ack = btf
            .member_offset("inet_connection_sock", "icsk_ack")
            .unwrap();
        assert!(lrcv.is_some_and(|o| o > inet_conn + ack), "{lrcv:?}");
        assert!(btf.path_offset("tcp_sock", &["lsndtime"]).is_some());
        assert_eq!(btf.path_offset("tcp_sock", &["inet_conn", "nope"]), None);
    }

    #[test]
    fn describes_tracepoint_prototypes_of_the_running_kernel() {
        let Ok(btf) = KernelBtf::from_sys_fs() else {
            eprintln!("SKIP: /sys/kernel/btf/vmlinux not readable on this machine");
            return;
        };
        assert_eq!(
            btf.tracepoint_args("inet_sock_set_state").unwrap(),
            ["struct sock *", "int", "int"]
        );
        let kfree = btf.tracepoint_args("kfree_skb").unwrap();
        assert_eq!(
            kfree[..3],
            ["struct sk_buff *", "void *", "enum skb_drop_reason"]
        );
        assert!(btf.tracepoint_args("no_such_tracepoint").is_none());
        let (syn, size) = btf.member_bits("tcphdr", "syn").unwrap();
        assert_eq!((syn / 8, size), (13, 1));
    }
}
