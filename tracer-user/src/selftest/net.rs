//! Raw IPv4 loopback sockets for the self-tests: the tests need control std
//! does not give (bind before connect, listen backlog 0, SO_LINGER 0,
//! TCP_SYNCNT), so they use libc directly.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn sockaddr(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// A TCP socket bound to 127.0.0.1 on an ephemeral port.
pub struct Socket {
    fd: OwnedFd,
}

impl Socket {
    pub fn bound() -> io::Result<Socket> {
        // SAFETY: socket(2) returns a new fd (or an error, checked) that
        // nothing else owns, so OwnedFd may take it; setsockopt and bind get
        // pointers to locals that live across the calls, with their sizes.
        unsafe {
            let fd = check(libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
            ))?;
            let s = Socket {
                fd: OwnedFd::from_raw_fd(fd),
            };
            let one: libc::c_int = 1;
            check(libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                &one as *const _ as *const libc::c_void,
                std::mem::size_of_val(&one) as libc::socklen_t,
            ))?;
            let addr = sockaddr(0);
            check(libc::bind(
                fd,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&addr) as libc::socklen_t,
            ))?;
            Ok(s)
        }
    }

    pub fn port(&self) -> io::Result<u16> {
        let mut addr = sockaddr(0);
        let mut len = std::mem::size_of_val(&addr) as libc::socklen_t;
        // SAFETY: `addr` and `len` are locals that outlive the call, and
        // `len` holds the size of `addr`, so the kernel writes within it.
        check(unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                &mut addr as *mut _ as *mut libc::sockaddr,
                &mut len,
            )
        })?;
        Ok(u16::from_be(addr.sin_port))
    }

    pub fn listen(&self, backlog: i32) -> io::Result<()> {
        // SAFETY: listen(2) takes integers only; the fd is ours and open.
        check(unsafe { libc::listen(self.fd.as_raw_fd(), backlog) }).map(|_| ())
    }

    pub fn connect(&self, port: u16) -> io::Result<()> {
        let addr = sockaddr(port);
        // SAFETY: `addr` is a local sockaddr_in that outlives the call, and
        // the length passed is its size.
        check(unsafe {
            libc::connect(
                self.fd.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of_val(&addr) as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    pub fn accept(&self) -> io::Result<Socket> {
        // SAFETY: accept4(2) allows a null address and length (the peer's
        // address is not wanted); the listening fd is ours and open.
        let fd = check(unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        })?;
        Ok(Socket {
            // SAFETY: accept4 just returned this fd (errors were checked);
            // nothing else owns it, so OwnedFd may close it.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// SO_LINGER {on, 0}: close() then aborts the connection with a RST.
    pub fn set_linger_zero(&self) -> io::Result<()> {
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        self.setsockopt(libc::SOL_SOCKET, libc::SO_LINGER, &l)
    }

    /// How many SYN retransmits before connect() gives up with ETIMEDOUT.
    pub fn set_syn_count(&self, n: libc::c_int) -> io::Result<()> {
        self.setsockopt(libc::IPPROTO_TCP, libc::TCP_SYNCNT, &n)
    }

    fn setsockopt<T>(&self, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
        // SAFETY: `v` is a reference valid for the call, and the length
        // passed is the size of `T`, so the kernel reads only `*v`.
        check(unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                v as *const T as *const libc::c_void,
                std::mem::size_of::<T>() as libc::socklen_t,
            )
        })
        .map(|_| ())
    }

    pub fn read_byte(&self) -> io::Result<usize> {
        let mut b = [0u8; 1];
        // SAFETY: `b` is a local 1-byte buffer and at most 1 byte is read.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), b.as_mut_ptr() as *mut libc::c_void, 1) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}
