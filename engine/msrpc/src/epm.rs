//! The endpoint mapper (TCP 135): `ept_map` finds the TCP port an interface listens on.
use super::connection::{Auth, Connection, Interface, RpcError, RpcResult, NDR_SYNTAX};
use super::ndr::{Reader, Writer};
use std::time::Duration;

const EPMAPPER: Interface = Interface {
    // e1af8308-5d1f-11c9-91a4-08002b14a0fa v3.0
    uuid: [0x08, 0x83, 0xaf, 0xe1, 0x1f, 0x5d, 0xc9, 0x11, 0x91, 0xa4, 0x08, 0x00, 0x2b, 0x14, 0xa0, 0xfa],
    major: 3,
    minor: 0,
};

/// The tower asking for `iface` over ncacn_ip_tcp.
fn tower(iface: &Interface) -> Vec<u8> {
    let mut t = Vec::with_capacity(75);
    t.extend_from_slice(&5u16.to_le_bytes());
    let uuid_floor = |t: &mut Vec<u8>, uuid: &[u8; 16], major: u16, minor: u16| {
        t.extend_from_slice(&19u16.to_le_bytes());
        t.push(0x0d);
        t.extend_from_slice(uuid);
        t.extend_from_slice(&major.to_le_bytes());
        t.extend_from_slice(&2u16.to_le_bytes());
        t.extend_from_slice(&minor.to_le_bytes());
    };
    uuid_floor(&mut t, &iface.uuid, iface.major, iface.minor);
    uuid_floor(&mut t, &NDR_SYNTAX, 2, 0);
    // Connection-oriented RPC, TCP port 0, IPv4 0.0.0.0.
    t.extend_from_slice(&[1, 0, 0x0b, 2, 0, 0, 0]);
    t.extend_from_slice(&[1, 0, 0x07, 2, 0, 0, 0]);
    t.extend_from_slice(&[1, 0, 0x09, 4, 0, 0, 0, 0, 0]);
    t
}

/// The TCP port from the first ncacn_ip_tcp tower in the reply.
fn port_from_tower(t: &[u8]) -> Option<u16> {
    let floors = u16::from_le_bytes([*t.first()?, *t.get(1)?]);
    let mut i = 2;
    for _ in 0..floors {
        let lhs = u16::from_le_bytes([*t.get(i)?, *t.get(i + 1)?]) as usize;
        let proto = *t.get(i + 2)?;
        let rhs_at = i + 2 + lhs;
        let rhs = u16::from_le_bytes([*t.get(rhs_at)?, *t.get(rhs_at + 1)?]) as usize;
        if proto == 0x07 && lhs == 1 && rhs == 2 {
            return Some(u16::from_be_bytes([*t.get(rhs_at + 2)?, *t.get(rhs_at + 3)?]));
        }
        i = rhs_at + 2 + rhs;
    }
    None
}

/// Asks the endpoint mapper on `host`:`port` where `iface` listens over TCP.
pub fn map_tcp(host: &str, port: u16, iface: &Interface, timeout: Duration) -> RpcResult<u16> {
    let mut c = Connection::connect(host, port, timeout)?;
    c.bind(EPMAPPER, Auth::None)?;
    let t = tower(iface);
    let mut w = Writer::new();
    w.pointer();
    w.bytes(&[0u8; 16]);
    w.pointer();
    w.u32(t.len() as u32);
    w.u32(t.len() as u32);
    w.bytes(&t);
    w.align(4);
    w.bytes(&[0u8; 20]);
    w.u32(4);
    let reply = c.call(3, &w.buf)?;
    let mut r = Reader::new(&reply);
    let perr = |m: String| RpcError::Protocol(format!("endpoint mapper on {host}:{port}: {m}"));
    r.take(20).map_err(perr)?;
    let n = r.u32().map_err(perr)?;
    let _max = r.u32().map_err(perr)?;
    let _offset = r.u32().map_err(perr)?;
    let actual = r.count(4).map_err(perr)?;
    let mut present = Vec::with_capacity(actual);
    for _ in 0..actual {
        present.push(r.pointer().map_err(perr)?);
    }
    for p in present.into_iter().take(n as usize) {
        if !p {
            continue;
        }
        let _max = r.u32().map_err(perr)?;
        let len = r.u32().map_err(perr)? as usize;
        let t = r.take(len).map_err(perr)?;
        if let Some(port) = port_from_tower(t) {
            return Ok(port);
        }
        r.align(4);
    }
    Err(RpcError::Protocol(format!(
        "the endpoint mapper on {host}:{port} knows no TCP endpoint for {} (is the DC's RPC server running?)",
        super::ndr::guid_text(&iface.uuid)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tower_round_trips_its_port() {
        let mut t = tower(&EPMAPPER);
        // Put port 49152 into the TCP floor, as a server's reply would.
        let at = t.len() - 9 - 2;
        t[at..at + 2].copy_from_slice(&49152u16.to_be_bytes());
        assert_eq!(port_from_tower(&t), Some(49152));
    }
}
