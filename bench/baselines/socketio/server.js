// Baseline for the gateway benchmarks (bench/run-baselines.sh): Socket.IO 4 behind its Redis
// adapter, the stack a chat server of this kind is commonly built on.
//
// A client connects over the websocket transport and names its room in the handshake query
// (`/socket.io/?EIO=4&transport=websocket&room=NAME`) or later with a `join` event; the server
// confirms with a `joined` event once the socket is in the room, so the load generator knows
// when it may count on deliveries. `POST /rooms/NAME/messages` with a JSON body broadcasts that
// body to the room as a `message` event and answers 200 once the broadcast has been handed to
// the adapter. Nothing is stored: there is no durable write per message, unlike the node it is
// compared with.
//
// Usage: node server.js  (PORT=0 picks a free port; HOST defaults to 127.0.0.1;
//                         REDIS_URL, e.g. redis://127.0.0.1:6379, is required)
// Prints `socketio-baseline listening on HOST:PORT pid PID` once it accepts connections.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || 0);
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) {
  console.error("REDIS_URL is required (the Redis adapter is part of the stack measured)");
  process.exit(2);
}

const ROUTE = /^\/rooms\/([^/]+)\/messages$/;
const MAX_BODY = 1 << 20;

function answer(res, status, text) {
  res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", (e) => console.error("redis:", e.message));
  await Promise.all([pub.connect(), sub.connect()]);

  // Socket.IO answers its own path on this server; every other request reaches `route`.
  const server = http.createServer(route);
  const io = new Server(server, { serveClient: false, adapter: createAdapter(pub, sub) });

  io.on("connection", (socket) => {
    const join = (room) => {
      if (typeof room !== "string" || room === "") return;
      socket.join(room);
      socket.emit("joined", room);
    };
    join(socket.handshake.query.room);
    socket.on("join", join);
  });

  function route(req, res) {
    const m = req.method === "POST" && ROUTE.exec(req.url);
    if (!m) return answer(res, 404, "not found\n");
    const room = decodeURIComponent(m[1]);
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on("end", () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return answer(res, 400, "body is not JSON\n");
      }
      io.to(room).emit("message", body);
      answer(res, 200, "ok\n");
    });
  }

  server.listen(port, host, () => {
    const a = server.address();
    console.log(`socketio-baseline listening on ${a.address}:${a.port} pid ${process.pid}`);
  });

  const stop = () => {
    io.close();
    Promise.allSettled([pub.quit(), sub.quit()]).then(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
