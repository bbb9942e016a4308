// Validates fixtures.json against the committed schemas/*.json with ajv as
// it comes (draft-07, the draft the schemas declare), the way a frontend
// team's CI would: every valid
// fixture must pass, every invalid one must be refused. The Rust side checks
// the same fixtures (tests/protocol_roundtrip.rs), so the two validators agree.
//
// Run: npm ci && npm run schemas   (or `npm test` for this and the tsc check)

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";

const root = new URL("../../", import.meta.url);
const readJson = (relative) => JSON.parse(readFileSync(fileURLToPath(new URL(relative, root)), "utf8"));

// strict: the schemas must not use anything ajv would silently ignore (no
// custom format, no unknown keyword). Nothing is added to ajv: integer widths
// are plain minimum/maximum (JS numbers lose precision past 2^53, so the
// uint64 bound is approximate here; the server checks it exactly).
const ajv = new Ajv({ strict: true, allErrors: true });

const schemas = {
  client: "schemas/client_message.schema.json",
  server: "schemas/server_message.schema.json",
  event: "schemas/availability_event.schema.json",
  booking: "schemas/booking_event.schema.json",
  room: "schemas/room_event.schema.json",
};
const titles = {
  client: "ClientMessage",
  server: "ServerMessage",
  event: "AvailabilityEvent",
  booking: "BookingEvent",
  room: "RoomEvent",
};

const fixtures = readJson("tests/contract/fixtures.json");
const failures = [];
let checked = 0;

for (const [kind, file] of Object.entries(schemas)) {
  const schema = readJson(file);
  if (schema.title !== titles[kind]) {
    failures.push(`${file}: title is ${JSON.stringify(schema.title)}, expected ${titles[kind]}`);
  }
  const validate = ajv.compile(schema);
  const { valid = [], invalid = [] } = fixtures[kind] ?? {};
  if (valid.length === 0 || invalid.length === 0) {
    failures.push(`fixtures.json: no valid or no invalid ${kind} fixtures`);
  }
  for (const { name, message } of valid) {
    checked++;
    if (!validate(message)) {
      failures.push(`${kind} "${name}" should be valid: ${ajv.errorsText(validate.errors)}`);
    }
  }
  for (const { name, message } of invalid) {
    checked++;
    if (validate(message)) {
      failures.push(`${kind} "${name}" should be refused, but ${file} accepts it`);
    }
  }
}

if (failures.length > 0) {
  console.error(`ajv: ${failures.length} of ${checked} checks failed:`);
  for (const failure of failures) console.error(`  - ${failure}`);
  process.exit(1);
}
console.log(`ajv: ${checked} fixtures agree with schemas/ (ajv defaults, strict)`);
