#!/usr/bin/env python3
"""Replica lag of a Redis primary/replica set, sampled while another load runs.

Method: every --interval-ms (default 5 ms) SET a unique key on the primary
whose value is the current time; the clock starts when the primary has
acknowledged the SET (the write is committed per its appendfsync policy).
In a tight loop (0.5 ms sleep) every replica is polled with one pipelined
batch of GETs for the keys it does not show yet; a key's lag is the time until
it is visible on *every* replica (the slowest one), so it matches "held on all
nodes". A sample not seen within --timeout-secs counts as a timeout and its
lag as that timeout. The resolution is one poll round trip (< 1 ms idle,
more under load). Stops sampling after --samples samples, at --deadline-secs
or on SIGTERM/SIGINT, waits for the samples in flight, then prints one JSON object:
{"samples", "timeouts", "lag_p50_ms", "lag_p99_ms", "lag_max_ms"}.
Standard library only: a minimal RESP client over a socket.
"""
import argparse, json, signal, socket, time


class Resp:
    def __init__(self, port, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rf = self.sock.makefile("rb")

    def send(self, *cmds):
        out = bytearray()
        for cmd in cmds:
            out += b"*%d\r\n" % len(cmd)
            for a in cmd:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def reply(self):
        line = self.rf.readline()
        kind, rest = line[:1], line[1:-2]
        if kind in (b"+", b":"):
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self.rf.read(n + 2)[:-2]
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError("bad RESP reply: %r" % line)

    def call(self, *args):
        self.send(args)
        return self.reply()


def pct(sorted_ms, p):
    if not sorted_ms:
        return None
    return round(sorted_ms[min(len(sorted_ms) - 1, int(p / 100 * len(sorted_ms)))], 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--primary", type=int, required=True, help="primary port")
    ap.add_argument("--replica", type=int, action="append", required=True, help="replica port (repeat)")
    ap.add_argument("--interval-ms", type=float, default=5)
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--deadline-secs", type=float, default=60)
    ap.add_argument("--timeout-secs", type=float, default=5)
    ap.add_argument("--ready-file", help="created once connected, before the first sample")
    a = ap.parse_args()

    stop = []
    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, lambda *_: stop.append(1))
    primary = Resp(a.primary)
    replicas = [Resp(p) for p in a.replica]
    if a.ready_file:
        open(a.ready_file, "w").close()
    tag = "lag:%d:" % time.time_ns()
    pending = {}  # key -> [t_ack, set of replica indexes not yet seen]
    lags, timeouts, n = [], 0, 0
    end = time.monotonic() + a.deadline_secs
    next_set = time.monotonic()
    while True:
        now = time.monotonic()
        sampling = not stop and n < a.samples and now < end
        if not sampling and not pending:
            break  # pending samples drain (or time out) after the last SET
        if sampling and now >= next_set:
            key = "%s%d" % (tag, n)
            primary.call("SET", key, repr(time.time()))
            pending[key] = [time.monotonic(), set(range(len(replicas)))]
            n += 1
            next_set = now + a.interval_ms / 1000
        for i, r in enumerate(replicas):
            keys = [k for k, (_, left) in pending.items() if i in left]
            if not keys:
                continue
            r.send(*[("GET", k) for k in keys])
            vals = [r.reply() for _ in keys]
            seen = time.monotonic()
            for k, v in zip(keys, vals):
                if v is not None:
                    pending[k][1].discard(i)
                    if not pending[k][1]:
                        lags.append((seen - pending.pop(k)[0]) * 1000)
        for k, (t0, _) in list(pending.items()):
            if time.monotonic() - t0 > a.timeout_secs:
                del pending[k]
                timeouts += 1
                lags.append(a.timeout_secs * 1000)
        time.sleep(0.0005)
    lags.sort()
    print(json.dumps({"samples": len(lags), "timeouts": timeouts,
                      "lag_p50_ms": pct(lags, 50), "lag_p99_ms": pct(lags, 99),
                      "lag_max_ms": round(lags[-1], 3) if lags else None}))


if __name__ == "__main__":
    main()
