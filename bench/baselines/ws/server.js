// Baseline for the gateway benchmarks (bench/run-baselines.sh): a plain WebSocket server with
// the `ws` package, the least a Node.js room broadcast can do.
//
// A client connects to `/?room=NAME`; the server adds the socket to that room (a Set per room)
// and confirms with the text frame `{"joined":"NAME"}`. `POST /rooms/NAME/messages` with a JSON
// body sends that JSON, serialised once, as a text frame to every socket of the room and
// answers 200. Nothing is stored: there is no durable write per message, unlike the node it is
// compared with.
//
// Usage: node server.js  (PORT=0 picks a free port; HOST defaults to 127.0.0.1)
// Prints `ws-baseline listening on HOST:PORT pid PID` once it accepts connections.
"use strict";

const http = require("node:http");
const { WebSocketServer } = require("ws");

const host = process.env.HOST || "127.0.0.1";
const port = Number(process.env.PORT || 0);

const ROUTE = /^\/rooms\/([^/]+)\/messages$/;
const MAX_BODY = 1 << 20;
const rooms = new Map();

function answer(res, status, text) {
  res.writeHead(status, { "content-type": "text/plain", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

const server = http.createServer((req, res) => {
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
    const members = rooms.get(room);
    if (members) {
      // One buffer for the whole room: each send then only frames and writes it.
      const frame = Buffer.from(JSON.stringify(body));
      for (const s of members) s.send(frame, { binary: false });
    }
    answer(res, 200, "ok\n");
  });
});

const wss = new WebSocketServer({ server });
wss.on("connection", (socket, req) => {
  const room = new URL(req.url, "http://x").searchParams.get("room");
  if (!room) return socket.close(1008, "room required");
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(socket);
  socket.on("close", () => {
    members.delete(socket);
    if (members.size === 0 && rooms.get(room) === members) rooms.delete(room);
  });
  socket.on("error", () => {});
  socket.send(JSON.stringify({ joined: room }));
});

server.listen(port, host, () => {
  const a = server.address();
  console.log(`ws-baseline listening on ${a.address}:${a.port} pid ${process.pid}`);
});

const stop = () => {
  wss.close();
  server.close(() => process.exit(0));
  for (const c of wss.clients) c.terminate();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
