/**
 * The one check of options objects (mechanisms/_common/checks.ts): unknown
 * keys are a TypeError naming the known ones, with a suggestion when the
 * key looks like a misspelling.
 */
import { assertEquals, assertThrows } from "@std/assert";
import {
  checkOptionKeys,
  closestKey,
  optionKeys,
} from "../mechanisms/_common/checks.ts";
import { leakChecked } from "./_helpers.ts";

interface _Example {
  create?: boolean;
  unlinkOnClose?: boolean;
  mode?: number;
}
const _KEYS = optionKeys<_Example>({
  create: true,
  unlinkOnClose: true,
  mode: true,
});

Deno.test(
  "checkOptionKeys() accepts undefined, an empty object and known keys",
  leakChecked(() => {
    checkOptionKeys(undefined, _KEYS, "open it");
    checkOptionKeys({}, _KEYS, "open it");
    checkOptionKeys({ create: true, mode: 0o600 }, _KEYS, "open it");
  }),
);

Deno.test(
  "checkOptionKeys() names the known options and the one a misspelt key meant",
  leakChecked(() => {
    const error = assertThrows(
      () => checkOptionKeys({ unlinkOnclose: true }, _KEYS, 'open "/jobs"'),
      TypeError,
    );
    assertEquals(
      error.message,
      'Cannot open "/jobs": unknown option "unlinkOnclose", did you mean "unlinkOnClose"? (known options: create, unlinkOnClose, mode)',
    );
    const far = assertThrows(
      () => checkOptionKeys({ colour: "red" }, _KEYS, 'open "/jobs"'),
      TypeError,
    );
    assertEquals(
      far.message,
      'Cannot open "/jobs": unknown option "colour" (known options: create, unlinkOnClose, mode)',
    );
  }),
);

Deno.test(
  "checkOptionKeys() rejects a key set to undefined, and options that are not an object",
  leakChecked(() => {
    assertThrows(
      () => checkOptionKeys({ craete: undefined }, _KEYS, "open it"),
      TypeError,
      'unknown option "craete", did you mean "create"?',
    );
    for (const bad of [null, "create", 1, true]) {
      assertThrows(
        () => checkOptionKeys(bad, _KEYS, "open it"),
        TypeError,
        "Cannot open it: options must be an object",
      );
    }
  }),
);

Deno.test(
  "closestKey() finds case slips, typos and swapped letters, and nothing for unrelated words",
  leakChecked(() => {
    const known = ["timeout", "signal", "priority", "mode"];
    assertEquals(closestKey("Timeout", known), "timeout");
    assertEquals(closestKey("timout", known), "timeout");
    assertEquals(closestKey("singal", known), "signal");
    assertEquals(closestKey("priorty", known), "priority");
    assertEquals(closestKey("mdoe", known), "mode");
    assertEquals(closestKey("colour", known), undefined);
    assertEquals(closestKey("x", known), undefined);
  }),
);

Deno.test(
  "optionKeys() lists every key of the type, in order",
  leakChecked(() => {
    assertEquals(_KEYS, ["create", "unlinkOnClose", "mode"]);
  }),
);
