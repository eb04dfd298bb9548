#![no_main]
//! DHCPv4 and DHCPv6 messages: the first byte picks the protocol, the rest is the UDP payload.
//! Every accessor, the option walks (nested ones too) and the request parsers must take any
//! bytes without panicking, and the walkers of validated options must agree with their lengths.

use libfuzzer_sys::fuzz_target;
use weft_dataplane::wire::dhcpv4::{
    DhcpOption, DhcpPacket, DhcpRequestRepr, classless_routes, ipv4_addrs,
};
use weft_dataplane::wire::dhcpv6::{
    Dhcpv6Option, Dhcpv6Options, Dhcpv6Packet, Dhcpv6RequestRepr, domain_names, ipv6_addrs,
    name_labels, oro_codes,
};

fuzz_target!(|data: &[u8]| {
    let Some((&which, msg)) = data.split_first() else {
        return;
    };
    if which & 1 == 0 {
        dhcpv4(msg);
    } else {
        dhcpv6(msg);
    }
});

fn dhcpv4(msg: &[u8]) {
    let Ok(p) = DhcpPacket::new_checked(msg) else {
        return;
    };
    let _ = (
        p.op(),
        p.xid(),
        p.flags(),
        p.ciaddr(),
        p.yiaddr(),
        p.client_mac(),
    );
    let _ = (p.sname().len(), p.file().len());
    // An option takes at least two bytes, so a walk yields no more than that many items.
    let bound = p.options_raw().len() / 2 + 1;
    let mut n = 0;
    for o in p.options() {
        n += 1;
        assert!(n <= bound, "option walk does not end");
        match o {
            Ok(DhcpOption::Routers(a) | DhcpOption::DnsServers(a)) => {
                assert_eq!(ipv4_addrs(a).count(), a.len() / 4);
            }
            Ok(DhcpOption::ClasslessRoutes(r)) => {
                assert!(classless_routes(r).count() <= r.len() / 5);
            }
            _ => {}
        }
    }
    if let Ok(r) = DhcpRequestRepr::parse(&p) {
        let _ = (r.broadcast(), r.requests(3), r.max_reply_len());
    }
}

fn dhcpv6(msg: &[u8]) {
    let Ok(p) = Dhcpv6Packet::new_checked(msg) else {
        return;
    };
    let _ = (p.msg_type(), p.xid());
    walk6(p.options_raw(), 0);
    if let Ok(r) = Dhcpv6RequestRepr::parse(&p) {
        let _ = r.requests(23);
        for ia in r.ia_na.iter() {
            assert!(ia.addresses().count() <= ia.options.len() / 28);
        }
    }
}

/// Walks DHCPv6 options and the options nested in them, to a bounded depth.
fn walk6(opts: &[u8], depth: u8) {
    // An option takes at least four bytes.
    let bound = opts.len() / 4 + 1;
    for (n, o) in Dhcpv6Options::new(opts).enumerate() {
        assert!(n < bound, "option walk does not end");
        match o {
            Ok(Dhcpv6Option::IaNa { options, .. } | Dhcpv6Option::IaAddr { options, .. })
                if depth < 4 =>
            {
                walk6(options, depth + 1)
            }
            Ok(Dhcpv6Option::Oro(c)) => assert_eq!(oro_codes(c).count(), c.len() / 2),
            Ok(Dhcpv6Option::DnsServers(a)) => assert_eq!(ipv6_addrs(a).count(), a.len() / 16),
            Ok(Dhcpv6Option::DomainList(d)) => {
                for name in domain_names(d).take(256) {
                    assert!(name_labels(name).count() <= name.len());
                }
            }
            _ => {}
        }
    }
}
