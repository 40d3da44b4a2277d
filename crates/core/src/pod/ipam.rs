//! Pod address management: a subnet, its gateway, and who holds which address.
//! Pure; the network edge persists `Allocations` and calls these functions.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("{0:?} is not a subnet in CIDR form (e.g. 10.88.0.0/16)")]
    BadCidr(String),
    #[error("subnet {0} is too small for pods (need at least a /30 or a /126)")]
    TooSmall(Subnet),
    #[error("subnet {0} has no free address left")]
    Exhausted(Subnet),
}

impl Subnet {
    fn bits(&self) -> u32 {
        if self.addr.is_ipv4() { 32 } else { 128 }
    }

    fn to_u128(ip: IpAddr) -> u128 {
        match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        }
    }

    fn addr_at(&self, v: u128) -> IpAddr {
        if self.addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::from(v as u32))
        } else {
            IpAddr::V6(Ipv6Addr::from(v))
        }
    }

    fn size(&self) -> u128 {
        let host_bits = self.bits() - u32::from(self.prefix);
        if host_bits >= 128 {
            u128::MAX
        } else {
            1u128 << host_bits
        }
    }

    fn base(&self) -> u128 {
        Self::to_u128(self.addr)
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn network(&self) -> IpAddr {
        self.addr
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The bridge's address: the first host address.
    pub fn gateway(&self) -> IpAddr {
        self.addr_at(self.base() + 1)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && {
            let v = Self::to_u128(ip);
            v >= self.base() && v - self.base() < self.size()
        }
    }

    /// Addresses pods may get: not the network address, the gateway, or (v4) broadcast.
    fn first_last(&self) -> (u128, u128) {
        let last = if self.is_ipv4() {
            self.size() - 2
        } else {
            self.size() - 1
        };
        (self.base() + 2, self.base() + last)
    }
}

impl FromStr for Subnet {
    type Err = IpamError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || IpamError::BadCidr(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        if u32::from(prefix) > bits {
            return Err(bad());
        }
        let host_bits = bits - u32::from(prefix);
        let mask = if host_bits >= 128 {
            0
        } else {
            !((1u128 << host_bits) - 1)
        };
        let net = Subnet::to_u128(addr) & mask;
        let subnet = Subnet {
            addr: if addr.is_ipv4() {
                IpAddr::V4(Ipv4Addr::from(net as u32))
            } else {
                IpAddr::V6(Ipv6Addr::from(net))
            },
            prefix,
        };
        if host_bits < 2 {
            return Err(IpamError::TooSmall(subnet));
        }
        Ok(subnet)
    }
}

impl TryFrom<String> for Subnet {
    type Error = IpamError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Who holds which address in one subnet. Addresses are handed out round-robin after the
/// last one given, like CNI host-local, so a released address is not reused at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocations {
    pub subnet: Subnet,
    pub held: BTreeMap<IpAddr, String>,
    pub last: Option<IpAddr>,
}

impl Allocations {
    pub fn new(subnet: Subnet) -> Self {
        Self {
            subnet,
            held: BTreeMap::new(),
            last: None,
        }
    }

    /// The address `owner` holds, if any.
    pub fn of(&self, owner: &str) -> Option<IpAddr> {
        self.held
            .iter()
            .find(|(_, o)| *o == owner)
            .map(|(ip, _)| *ip)
    }

    /// Gives `owner` an address; the same one again if it already holds one (retries).
    pub fn allocate(&mut self, owner: &str) -> Result<IpAddr, IpamError> {
        if let Some(ip) = self.of(owner) {
            return Ok(ip);
        }
        let (first, last) = self.subnet.first_last();
        let start = match self.last {
            Some(ip) if self.subnet.contains(ip) => Subnet::to_u128(ip),
            _ => last,
        };
        let mut cur = start;
        // Bounded by the number of held addresses + 1: the scan stops at the first free one.
        for _ in 0..=self.held.len() {
            cur = if cur >= last || cur < first {
                first
            } else {
                cur + 1
            };
            let ip = self.subnet.addr_at(cur);
            if let std::collections::btree_map::Entry::Vacant(slot) = self.held.entry(ip) {
                slot.insert(owner.to_string());
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(IpamError::Exhausted(self.subnet))
    }

    /// Releases whatever `owner` holds. Returns the address, if there was one.
    pub fn release(&mut self, owner: &str) -> Option<IpAddr> {
        let ip = self.of(owner)?;
        self.held.remove(&ip);
        Some(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        let s: Subnet = "10.88.3.7/16".parse().unwrap();
        assert_eq!(s.to_string(), "10.88.0.0/16");
        assert_eq!(s.gateway().to_string(), "10.88.0.1");
        assert!(s.contains("10.88.255.1".parse().unwrap()));
        assert!(!s.contains("10.89.0.1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        assert!("10.0.0.0/31".parse::<Subnet>().is_err());
        assert!("nope".parse::<Subnet>().is_err());
        let v6: Subnet = "fd00:b::/64".parse().unwrap();
        assert_eq!(v6.gateway().to_string(), "fd00:b::1");
    }

    #[test]
    fn allocates_round_robin_never_twice() {
        let mut a = Allocations::new("10.0.0.0/29".parse().unwrap());
        // usable: .2 .. .6 (5 addresses)
        let ips: Vec<_> = (0..5)
            .map(|i| a.allocate(&format!("p{i}")).unwrap())
            .collect();
        assert_eq!(ips[0].to_string(), "10.0.0.2");
        assert_eq!(ips[4].to_string(), "10.0.0.6");
        assert_eq!(a.allocate("p9"), Err(IpamError::Exhausted(a.subnet)));
        // retry gives the same
        assert_eq!(a.allocate("p1").unwrap(), ips[1]);
        assert_eq!(a.release("p1"), Some(ips[1]));
        assert_eq!(a.release("p1"), None);
        assert_eq!(a.allocate("new").unwrap(), ips[1]);
        let uniq: std::collections::BTreeSet<_> = a.held.keys().collect();
        assert_eq!(uniq.len(), 5);
    }

    #[test]
    fn released_address_not_reused_immediately() {
        let mut a = Allocations::new("10.0.0.0/24".parse().unwrap());
        let first = a.allocate("a").unwrap();
        a.release("a");
        let second = a.allocate("b").unwrap();
        assert_ne!(first, second);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Allocations>(&json).unwrap(), a);
    }
}
