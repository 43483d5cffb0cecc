// The tests' independent Sparkplug B codec: one JSON request per stdin line, one JSON answer per stdout
// line. {"decode": "<base64 payload>"} answers the payload as Eclipse Tahu's JavaScript library decodes
// it (64-bit integers as numbers, a metric's datatype by name); {"encode": {...}} answers the base64
// of a payload Tahu encodes from {timestamp, seq, metrics: [{name, type, value}]}.
"use strict";
const readline = require("readline");
const Long = require("long");
const { decodePayload, encodePayload } = require("sparkplug-payload/lib/sparkplugbpayload");

function plain(value) {
  if (Long.isLong(value)) return value.toNumber();
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === "object" && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function answer(request) {
  if ("decode" in request) return { payload: plain(decodePayload(Buffer.from(request.decode, "base64"))) };
  if ("encode" in request) return { base64: Buffer.from(encodePayload(request.encode)).toString("base64") };
  return { error: "neither decode nor encode" };
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  let reply;
  try {
    reply = answer(JSON.parse(line));
  } catch (error) {
    reply = { error: String(error) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});
