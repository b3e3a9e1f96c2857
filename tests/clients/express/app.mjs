// An Express app keeping its sessions in "Redis" through the standard
// middleware (express-session + connect-redis + node-redis), unchanged,
// pointed at feedmesh's RESP ports: one instance per node. Run by
// crates/cli/tests/it/clients.rs; by hand:
//   npm ci --prefix tests/clients/express
//   node tests/clients/express/app.mjs RESP_PORT_A RESP_PORT_B
// It logs in on instance A, reads the session on instance B (the other
// node), logs out there, and checks that A refuses the cookie. Prints one
// JSON line of what it saw; exits 1 with the reason on the first failure.
import express from "express";
import session from "express-session";
import { RedisStore } from "connect-redis";
import { createClient } from "redis";

const [portA, portB] = process.argv.slice(2).map(Number);
if (!portA || !portB) {
  console.error("usage: node app.mjs RESP_PORT_A RESP_PORT_B");
  process.exit(2);
}
const DEADLINE_MS = 15000;

async function instance(respPort) {
  const client = createClient({ url: `redis://127.0.0.1:${respPort}` });
  client.on("error", (err) => console.error(`redis client ${respPort}: ${err}`));
  await client.connect();
  const store = new RedisStore({ client, prefix: "sess:" });
  const app = express();
  app.use(express.json());
  app.use(
    session({
      store,
      secret: "the same secret on every instance",
      resave: false,
      saveUninitialized: false,
      cookie: { maxAge: 3600 * 1000 },
    }),
  );
  app.post("/login", (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.user = req.body.user;
      req.session.save((err) => (err ? next(err) : res.json({ user: req.session.user })));
    });
  });
  app.get("/me", (req, res) =>
    req.session.user ? res.json({ user: req.session.user }) : res.status(401).json({ error: "not logged in" }),
  );
  app.post("/logout", (req, res, next) =>
    req.session.destroy((err) => (err ? next(err) : res.status(204).end())),
  );
  app.use((err, req, res, next) => res.status(500).json({ error: String(err) }));
  const server = await new Promise((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  return { client, store, server, url: `http://127.0.0.1:${server.address().port}` };
}

function fail(message) {
  console.error(`express client: ${message}`);
  process.exit(1);
}

async function until(what, check) {
  const start = Date.now();
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() - start > DEADLINE_MS) fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const a = await instance(portA);
const b = await instance(portB);
const seen = {};

const login = await fetch(`${a.url}/login`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ user: "alice" }),
});
if (login.status !== 200) fail(`login answered ${login.status}: ${await login.text()}`);
const cookie = login.headers.get("set-cookie")?.split(";")[0];
if (!cookie) fail("login set no cookie");
seen.sid = decodeURIComponent(cookie.split("=")[1]).slice(2).split(".")[0];
const me = async (at) => fetch(`${at.url}/me`, { headers: { cookie } });
const onA = await me(a);
if (onA.status !== 200) fail(`GET /me on A answered ${onA.status}`);
seen.user_on_a = (await onA.json()).user;
seen.sessions_on_a = await new Promise((resolve, reject) =>
  a.store.length((err, n) => (err ? reject(err) : resolve(n))),
);
seen.user_on_b = await until("B knows the session", async () => {
  const r = await me(b);
  return r.status === 200 ? (await r.json()).user : undefined;
});
const logout = await fetch(`${b.url}/logout`, { method: "POST", headers: { cookie } });
if (logout.status !== 204) fail(`logout on B answered ${logout.status}: ${await logout.text()}`);
seen.status_on_a_after_logout = await until("A refuses the cookie", async () => {
  const r = await me(a);
  return r.status === 401 ? r.status : undefined;
});
console.log(JSON.stringify(seen));
for (const x of [a, b]) {
  x.server.close();
  await x.client.quit();
}
