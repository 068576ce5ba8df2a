//! The two choices every socket starts with: its address family and its type (the first two
//! arguments of `socket(2)`), as the command line names them. Used by the flags ([`crate::cli`])
//! and the addresses ([`crate::addr`]), and depending on neither.

use std::fmt;

use clap::ValueEnum;
use socket2::{Domain, Type};

/// `--family`: which address family the socket belongs to.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Family {
    /// AF_INET: IPv4 addresses such as 127.0.0.1
    Ipv4,
    /// AF_INET6: IPv6 addresses such as ::1
    Ipv6,
    /// AF_UNIX: a path in the file system, for processes on the same machine
    Unix,
}

impl Family {
    /// The socket2 value for this family.
    pub fn domain(self) -> Domain {
        match self {
            Family::Ipv4 => Domain::IPV4,
            Family::Ipv6 => Domain::IPV6,
            Family::Unix => Domain::UNIX,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
            Family::Unix => "unix",
        })
    }
}

/// `--type`: a byte stream or separate datagrams.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SockType {
    /// SOCK_STREAM: a connected, reliable, ordered byte stream (TCP for ipv4/ipv6)
    Stream,
    /// SOCK_DGRAM: separate messages, no connection, no guarantees (UDP for ipv4/ipv6)
    Dgram,
}

impl SockType {
    /// The socket2 value for this type.
    pub fn ty(self) -> Type {
        match self {
            SockType::Stream => Type::STREAM,
            SockType::Dgram => Type::DGRAM,
        }
    }
}

impl fmt::Display for SockType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SockType::Stream => "stream",
            SockType::Dgram => "dgram",
        })
    }
}
