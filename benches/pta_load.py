#!/usr/bin/env python3
"""Load for pass-through authentication's front ends: CONCURRENCY clients at once, each
sending requests one after another for SECONDS, the right password each time. Prints
authentications per second and p50/p99 latency.

  pta_load.py radius HOST:PORT SECRET USER PASSWORD CONCURRENCY SECONDS
  pta_load.py hook HOST:PORT HMAC_KEY USER PASSWORD CONCURRENCY SECONDS
Standard library only: the client's own cost is small beside a directory bind."""
import hashlib, hmac, http.client, json, os, socket, struct, sys, threading, time


def radius_request(ident, secret, user, password):
    auth = os.urandom(16)
    pw = password.encode()
    pw += b"\0" * ((16 - len(pw) % 16) % 16 or (16 if not pw else 0))
    hidden, prev = b"", auth
    for i in range(0, len(pw), 16):
        key = hashlib.md5(secret + prev).digest()
        block = bytes(a ^ b for a, b in zip(pw[i:i + 16], key))
        hidden += block
        prev = block
    attrs = bytes([80, 18]) + b"\0" * 16
    attrs += bytes([1, len(user) + 2]) + user.encode()
    attrs += bytes([2, len(hidden) + 2]) + hidden
    packet = bytes([1, ident]) + struct.pack("!H", 20 + len(attrs)) + auth + attrs
    ma = hmac.new(secret, packet, hashlib.md5).digest()
    return packet[:22] + ma + packet[38:]


def run_radius(addr, secret, user, password, stop, out):
    host, port = addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    ident = 0
    while time.time() < stop:
        ident = (ident + 1) % 256
        t = time.perf_counter()
        s.sendto(radius_request(ident, secret, user, password), (host, int(port)))
        answer = s.recv(4096)
        out.append((time.perf_counter() - t, answer[0] == 2))


def run_hook(addr, key, user, password, stop, out):
    host, port = addr.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    while time.time() < stop:
        body = json.dumps({"username": user, "password": password, "nonce": os.urandom(8).hex()}).encode()
        ts = str(int(time.time()))
        sig = hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        t = time.perf_counter()
        c.request("POST", "/v1/verify", body, {"content-type": "application/json", "x-idflow-timestamp": ts, "x-idflow-signature": sig})
        r = c.getresponse()
        answer = json.loads(r.read())
        out.append((time.perf_counter() - t, answer.get("verified") is True))


def main():
    kind, addr, secret, user, password, conc, seconds = sys.argv[1:8]
    stop = time.time() + int(seconds)
    outs = [[] for _ in range(int(conc))]
    f = run_radius if kind == "radius" else run_hook
    threads = [threading.Thread(target=f, args=(addr, secret.encode(), user, password, stop, o)) for o in outs]
    began = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = time.time() - began
    lat = sorted(x for o in outs for x, _ in o)
    ok = sum(1 for o in outs for _, a in o if a)
    pct = lambda p: lat[min(int(len(lat) * p), len(lat) - 1)] * 1000 if lat else 0
    print(f"{kind}, {conc} clients: {len(lat) / took:.0f}/s, p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms ({len(lat)} requests, {ok} accepted)")
    if ok != len(lat):
        sys.exit(1)


main()
