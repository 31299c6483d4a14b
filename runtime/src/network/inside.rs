//! The container's side of egress: address, link and default route of
//! `eth0`, set by the container's own process (in its network namespace,
//! before the user's command runs) with ioctls, so no host binary runs in
//! the container's namespaces and no netlink code is needed for three calls.

use super::NetworkError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

/// What the container process sets on `eth0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsidePlan {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

const IFACE: &[u8] = b"eth0\0";

fn sys(what: &'static str) -> NetworkError {
    NetworkError::Sys {
        what,
        source: nix::Error::last(),
    }
}

fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size; both are plain data.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ifreq() -> libc::ifreq {
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(IFACE) {
        *dst = *src as libc::c_char;
    }
    req
}

/// Address `eth0`, bring it up, and route everything via the gateway.
pub fn configure(plan: &InsidePlan) -> Result<(), NetworkError> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let sock: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|source| NetworkError::Sys {
        what: "opening a socket to configure eth0",
        source,
    })?;
    let fd = sock.as_raw_fd();
    let mask = Ipv4Addr::from(super::mask(plan.prefix));
    // SAFETY: each ioctl reads or writes the ifreq/rtentry we own.
    unsafe {
        let mut req = ifreq();
        req.ifr_ifru.ifru_addr = sockaddr(plan.address);
        if libc::ioctl(fd, libc::SIOCSIFADDR as libc::Ioctl, &req) < 0 {
            return Err(sys("setting the address of eth0"));
        }
        let mut req = ifreq();
        req.ifr_ifru.ifru_netmask = sockaddr(mask);
        if libc::ioctl(fd, libc::SIOCSIFNETMASK as libc::Ioctl, &req) < 0 {
            return Err(sys("setting the netmask of eth0"));
        }
        let mut req = ifreq();
        if libc::ioctl(fd, libc::SIOCGIFFLAGS as libc::Ioctl, &mut req) < 0 {
            return Err(sys("reading the flags of eth0"));
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS as libc::Ioctl, &req) < 0 {
            return Err(sys("bringing up eth0"));
        }
        let mut route: libc::rtentry = std::mem::zeroed();
        route.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
        route.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
        route.rt_gateway = sockaddr(plan.gateway);
        route.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        if libc::ioctl(fd, libc::SIOCADDRT as libc::Ioctl, &route) < 0 {
            return Err(sys("adding the default route"));
        }
    }
    Ok(())
}
