//! Who the client is, network-wise: the peer address, or the right-most
//! address of `X-Forwarded-For` that is not a trusted proxy, believed only
//! when the peer itself is a trusted proxy (nginx `real_ip_recursive on`).

use std::net::IpAddr;

use ipnet::IpNet;

/// Trusted proxy networks, from `geoip.trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    // "[2001:db8::1]:443" or "192.0.2.1:8080"
    hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip())
}

impl TrustedProxies {
    /// Trusts the peers and forwarding hops inside `nets` (empty: trusts none).
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies { nets }
    }

    /// True when no proxy is trusted: `X-Forwarded-For` is never believed.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The peer is a trusted proxy: its forwarding headers are believed.
    pub fn trusts_peer(&self, peer: IpAddr) -> bool {
        !self.nets.is_empty() && self.trusts(peer.to_canonical())
    }

    /// `X-Forwarded-For` for the application: the chain received from a
    /// trusted proxy with `peer` appended; from anyone else, `peer` alone
    /// (a client's own header is not passed on).
    pub fn forwarded_for<'a>(
        &self,
        peer: IpAddr,
        received: impl Iterator<Item = &'a str>,
    ) -> String {
        let mut chain = String::new();
        if self.trusts_peer(peer) {
            for value in received {
                let value = value.trim();
                if value.is_empty() {
                    continue;
                }
                if !chain.is_empty() {
                    chain.push_str(", ");
                }
                chain.push_str(value);
            }
        }
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&peer.to_canonical().to_string());
        chain
    }

    /// The client address for a request from `peer` carrying these
    /// `X-Forwarded-For` values (in header order). Walks the hops from the
    /// right while the current address is a trusted proxy; stops at the
    /// first address that is not, or at a hop that is not an address.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if self.nets.is_empty() || !self.trusts(client) {
            return client;
        }
        for value in forwarded_for.rev() {
            for hop in value.rsplit(',') {
                if !self.trusts(client) {
                    return client;
                }
                match parse_hop(hop) {
                    Some(ip) => client = ip.to_canonical(),
                    None => return client,
                }
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_appends_only_behind_a_trusted_proxy() {
        let t = trusted();
        let lb: IpAddr = "10.1.2.3".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let sent = ["6.6.6.6, 198.51.100.7", "192.0.2.1"];
        assert_eq!(
            t.forwarded_for(lb, sent.iter().copied()),
            "6.6.6.6, 198.51.100.7, 192.0.2.1, 10.1.2.3"
        );
        assert_eq!(
            t.forwarded_for(mapped, sent.iter().copied()),
            "6.6.6.6, 198.51.100.7, 192.0.2.1, 10.1.2.3"
        );
        assert_eq!(
            t.forwarded_for(outsider, sent.iter().copied()),
            "203.0.113.9"
        );
        assert_eq!(t.forwarded_for(lb, std::iter::empty()), "10.1.2.3");
        let none = TrustedProxies::default();
        assert_eq!(none.forwarded_for(lb, sent.iter().copied()), "10.1.2.3");
    }

    fn trusted() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.168.1.1/32".parse().unwrap(),
        ])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_header_is_ignored() {
        let t = trusted();
        assert_eq!(
            t.client_ip(ip("203.0.113.9"), ["1.2.3.4"].into_iter()),
            ip("203.0.113.9")
        );
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_ip(ip("10.0.0.1"), ["1.2.3.4"].into_iter()),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn right_most_untrusted_hop_wins() {
        let t = trusted();
        // spoofed, real client, inner proxy
        assert_eq!(
            t.client_ip(
                ip("10.0.0.1"),
                ["6.6.6.6, 81.2.69.142, 10.0.0.2"].into_iter()
            ),
            ip("81.2.69.142")
        );
        // several header lines count as one list
        assert_eq!(
            t.client_ip(
                ip("10.0.0.1"),
                ["6.6.6.6", "81.2.69.142:5555, 192.168.1.1"].into_iter()
            ),
            ip("81.2.69.142")
        );
        // all trusted: the left-most
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["10.9.9.9"].into_iter()),
            ip("10.9.9.9")
        );
        // garbage stops the walk at the last good address
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), ["1.1.1.1, bogus"].into_iter()),
            ip("10.0.0.1")
        );
        // v4-mapped peers count as v4
        assert_eq!(
            t.client_ip(ip("::ffff:10.0.0.1"), ["[2001:db8::7]:443"].into_iter()),
            ip("2001:db8::7")
        );
    }
}
