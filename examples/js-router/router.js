// The JSON field router of plugins/json-router, in JavaScript (ComponentizeJS).
//
// Same config, same actions, same error kinds as the Rust plugin:
//
//   [plugins.js-router]
//   wasm = "examples/js-router/js_router.wasm"
//   sinks = ["billing", "audit", "archive"]
//   config = { field = "data.object.status", "route.paid" = "billing,audit", default = "archive" }
//
// `field` is a dotted path through JSON objects. `route.<value>` lists the
// sinks (comma-separated) for events whose field is `<value>`: a string as
// is, a number as the body wrote it, `true` or `false`. `default` lists the
// sinks for everything else; without it the rest is dropped with a reason.
// Each sink gets the body unchanged, keyed by the event id, with the value as
// subject suffix when it is a string, number or boolean.

import { get } from 'hookyard:router/config@0.1.0';

// A JSON number, kept as the text the body wrote (`1.50` stays `1.50`).
class JsonNumber {
  constructor(text) {
    this.text = text;
  }
}

// `fatal`: a body that is not UTF-8 is not JSON (as for serde_json);
// `ignoreBOM`: keep a leading BOM so that JSON.parse refuses it, as serde_json does.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// The sink names listed in config `key`, or null if unset or naming none.
function sinks(key) {
  const names = (get(key) ?? '').split(',').map((name) => name.trim()).filter((name) => name);
  return names.length > 0 ? names : null;
}

// The value's routing text, or why it has none.
function describe(field, value) {
  if (value === undefined) return { why: `${field} is missing` };
  if (value === null) return { why: `${field} is null` };
  if (value instanceof JsonNumber) return { text: value.text };
  if (typeof value === 'string') return { text: value };
  if (typeof value === 'boolean') return { text: String(value) };
  if (Array.isArray(value)) return { why: `${field} is an array` };
  return { why: `${field} is an object` };
}

export const handler = {
  // Errors are thrown as the WIT `plugin-error` variant: `{ tag, val }`.
  handle(event) {
    const field = get('field');
    if (field === undefined || field === null) {
      throw { tag: 'rejected', val: 'config `field` is not set' };
    }
    let body;
    try {
      body = JSON.parse(utf8.decode(event.body), (_key, value, context) =>
        typeof value === 'number' ? new JsonNumber(context.source) : value,
      );
    } catch (e) {
      throw { tag: 'invalid-input', val: `body is not JSON: ${e.message ?? e}` };
    }
    let value = body;
    for (const segment of field.split('.')) {
      const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
      if (!isObject || value instanceof JsonNumber || !Object.hasOwn(value, segment)) {
        value = undefined;
        break;
      }
      value = value[segment];
    }
    const { text, why } = describe(field, value);
    const chosen = (text !== undefined ? sinks(`route.${text}`) : null) ?? sinks('default');
    if (chosen === null) {
      const reason = text !== undefined ? `no route for ${field} = ${text}` : `no route: ${why}`;
      return [{ tag: 'drop', val: reason }];
    }
    return chosen.map((sink) => ({
      tag: 'deliver',
      val: {
        sink,
        payload: event.body,
        headers: [['content-type', 'application/json']],
        subjectSuffix: text,
        key: event.id,
      },
    }));
  },
};
