// Parses schemas/asyncapi.yaml with @asyncapi/parser, as a team consuming
// the contract would, and fails on any error diagnostic (warnings are
// printed). It also checks that the document names every message type of
// schemas/ (each variant of the client and server unions, each publisher
// event) and that every payload resolves to its schema (the `$ref`s into
// the JSON Schema files beside it).
//
// Run: npm ci && npm run asyncapi   (or `npm test` for every contract check)

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Parser, fromFile, DiagnosticSeverity } from "@asyncapi/parser";

const root = new URL("../../", import.meta.url);
const path = (relative) => fileURLToPath(new URL(relative, root));
const readJson = (relative) => JSON.parse(readFileSync(path(relative), "utf8"));

const parser = new Parser();
const { document, diagnostics } = await fromFile(parser, path("schemas/asyncapi.yaml")).parse();

const failures = [];
for (const diagnostic of diagnostics) {
  const where = diagnostic.path.join("/");
  const line = `${DiagnosticSeverity[diagnostic.severity]} ${diagnostic.code} at ${where}: ${diagnostic.message}`;
  if (diagnostic.severity === DiagnosticSeverity.Error) {
    failures.push(line);
  } else {
    console.log(`asyncapi: ${line}`);
  }
}

if (document === undefined) {
  failures.push("the document did not parse");
} else {
  if (document.version() !== "3.0.0") {
    failures.push(`asyncapi is ${document.version()}, expected 3.0.0`);
  }
  const messages = new Map(document.allMessages().all().map((m) => [m.name(), m]));

  // Every message type of schemas/: the unions' variants (their definitions
  // selected by `type`) and the publisher events (each file's title).
  const expected = [];
  for (const file of ["client_message", "server_message"]) {
    const schema = readJson(`schemas/${file}.schema.json`);
    for (const branch of schema.allOf) {
      expected.push(branch.then.$ref.replace("#/definitions/", ""));
    }
  }
  for (const file of ["availability_event", "booking_event", "room_event"]) {
    expected.push(readJson(`schemas/${file}.schema.json`).title);
  }
  for (const name of expected) {
    const message = messages.get(name);
    if (message === undefined) {
      failures.push(`no message named ${name}`);
      continue;
    }
    // The payload is the JSON Schema definition, resolved: an object
    // schema with properties, titled as in schemas/ (a multi-format
    // payload keeps its schema under `schema`).
    const payload = message.payload()?.json();
    const json = payload?.schema ?? payload;
    if (json?.type !== "object" || json?.title !== name || json?.properties === undefined) {
      failures.push(`${name}: its payload does not resolve to its JSON Schema definition`);
    }
  }
  if (messages.size !== expected.length) {
    failures.push(`the document has ${messages.size} messages, schemas/ ${expected.length}`);
  }

  // The operations: the gateway receives client messages and publishers'
  // events, and sends server messages.
  const actions = new Map(document.operations().all().map((o) => [o.id(), o.action()]));
  for (const [id, action] of [
    ["receiveClientMessage", "receive"],
    ["sendServerMessage", "send"],
    ["receiveTourAvailabilityUpdated", "receive"],
  ]) {
    if (actions.get(id) !== action) {
      failures.push(`operation ${id} is ${actions.get(id)}, expected ${action}`);
    }
  }
  const amqp = document.channels().get("tourAvailabilityUpdated")?.bindings().get("amqp")?.value();
  if (amqp?.exchange?.name !== "tour_booking_events" || amqp?.exchange?.type !== "topic") {
    failures.push(`the AMQP binding of tour.availability.updated is ${JSON.stringify(amqp)}`);
  }
  if (failures.length === 0) {
    console.log(
      `asyncapi: schemas/asyncapi.yaml parses with no error; its ${messages.size} messages ` +
        `are every message type of schemas/; ${actions.size} operations`,
    );
  }
}

if (failures.length > 0) {
  console.error(`asyncapi: ${failures.length} problem(s):`);
  for (const failure of failures) console.error(`  - ${failure}`);
  process.exit(1);
}
