#!/usr/bin/env python3
"""Checks against docs/openapi.json, for tests/integration/test_openapi.sh
and test_api_docs.sh (standard library only).

  openapi_tool.py response SPEC METHOD PATH STATUS BODY_FILE CONTENT_TYPE
      The answer a real hub gave is documented: the operation (PATH matched
      against the path templates), the status among its responses, the
      content type, and for JSON the body valid against the response's
      schema (a JSON Schema subset; a keyword this checker does not know is
      an error, so the document cannot use one it silently skips). Prints
      "METHOD TEMPLATE STATUS" for the operation it checked.
  openapi_tool.py request SPEC METHOD PATH BODY_FILE
      A request body the hub accepted is valid against the operation's
      documented request schema (so the schema is not stricter than the
      hub), and an operation that takes no body documents none.
  openapi_tool.py apimd SPEC API_MD
      docs/api.md's headings name exactly the document's operations, both
      ways, and a heading's "[?a=..&b=..]" exactly the query arguments.
Exit status 0 when all holds, 1 with one line per problem otherwise.
"""
import json
import re
import sys

KNOWN = {"$ref", "type", "required", "properties", "additionalProperties", "enum", "const",
         "items", "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength",
         "pattern", "format", "oneOf", "allOf", "anyOf", "minProperties", "description",
         "default", "examples", "deprecated", "title"}
FORMATS = {
    "uuid": re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    "date-time": re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$"),
    "uri": re.compile(r"^[a-z][a-z0-9+.-]*://\S+$"),
}
# Bounds: keyword, to which values it applies, what is measured, lower?
BOUNDS = (
    ("minLength", lambda v, num: isinstance(v, str), "length", True),
    ("maxLength", lambda v, num: isinstance(v, str), "length", False),
    ("minimum", lambda v, num: num, "value", True),
    ("maximum", lambda v, num: num, "value", False),
    ("minItems", lambda v, num: isinstance(v, list), "items", True),
    ("maxItems", lambda v, num: isinstance(v, list), "items", False),
)
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError("non-local $ref " + ref)
        cur = spec
        for part in ref[2:].split("/"):
            cur = cur[part]
        node = cur
    return node


def type_ok(t, v):
    return {
        "object": lambda: isinstance(v, dict),
        "array": lambda: isinstance(v, list),
        "string": lambda: isinstance(v, str),
        "boolean": lambda: isinstance(v, bool),
        "null": lambda: v is None,
        "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
    }[t]()


def validate(spec, schema, v, where, errs):
    if "$ref" in schema:
        validate(spec, resolve(spec, schema), v, where, errs)
        return
    for k in schema:
        if k not in KNOWN:
            errs.append(f"{where}: schema keyword {k} unknown to this checker")
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(type_ok(t, v) for t in types):
            errs.append(f"{where}: {json.dumps(v)[:80]} is not of type {schema['type']}")
            return
    if "const" in schema and v != schema["const"]:
        errs.append(f"{where}: {json.dumps(v)[:80]} is not {json.dumps(schema['const'])}")
    if "enum" in schema and v not in schema["enum"]:
        errs.append(f"{where}: {json.dumps(v)[:80]} is not one of {schema['enum']}")
    is_num = isinstance(v, (int, float)) and not isinstance(v, bool)
    for kw, applies, size, low in BOUNDS:
        if kw in schema and applies(v, is_num):
            n = v if is_num else len(v)
            if (n < schema[kw]) if low else (n > schema[kw]):
                errs.append(f"{where}: {kw} {schema[kw]} not met ({size} {n})")
    if isinstance(v, str):
        if "pattern" in schema and not re.search(schema["pattern"], v):
            errs.append(f"{where}: {v!r} does not match {schema['pattern']}")
        fmt = schema.get("format")
        if fmt in FORMATS and not FORMATS[fmt].match(v):
            errs.append(f"{where}: {v!r} is not a {fmt}")
    if isinstance(v, list):
        if "items" in schema:
            for i, item in enumerate(v):
                validate(spec, schema["items"], item, f"{where}/{i}", errs)
    if isinstance(v, dict):
        props = schema.get("properties", {})
        for k in schema.get("required", []):
            if k not in v:
                errs.append(f"{where}: required field {k} missing")
        if "minProperties" in schema and len(v) < schema["minProperties"]:
            errs.append(f"{where}: fewer than {schema['minProperties']} fields")
        for k, val in v.items():
            if k in props:
                validate(spec, props[k], val, f"{where}/{k}", errs)
            elif schema.get("additionalProperties") is False:
                errs.append(f"{where}: field {k} is not documented")
            elif isinstance(schema.get("additionalProperties"), dict):
                validate(spec, schema["additionalProperties"], val, f"{where}/{k}", errs)
    for s in schema.get("allOf", []):
        validate(spec, s, v, where, errs)
    for key, want in (("oneOf", 1), ("anyOf", None)):
        if key in schema:
            ok = 0
            for s in schema[key]:
                e = []
                validate(spec, s, v, where, e)
                ok += not e
            if (want == 1 and ok != 1) or (want is None and ok == 0):
                errs.append(f"{where}: matches {ok} of the {key} schemas")


def find_operation(spec, method, path):
    for tpl, item in spec["paths"].items():
        rx = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(tpl)) + "/?$"
        if re.match(rx, path) and method.lower() in item:
            return tpl, item[method.lower()]
    return None, None


def cmd_response(spec, method, path, status, body_file, ctype):
    path = path.split("?", 1)[0]
    tpl, op = find_operation(spec, method, path)
    if not op:
        return [f"{method} {path}: no documented operation"]
    resp = op["responses"].get(status)
    if resp is None:
        return [f"{method} {tpl}: status {status} is not documented"]
    resp = resolve(spec, resp)
    content = resp.get("content", {})
    mt = ctype.split(";", 1)[0].strip().lower()
    if mt not in content:
        return [f"{method} {tpl} {status}: content type {ctype!r} is not documented ({list(content)})"]
    print(f"{method} {tpl} {status}")
    if mt != "application/json":
        return []
    with open(body_file, "rb") as f:
        raw = f.read()
    try:
        body = json.loads(raw)
    except ValueError as e:
        return [f"{method} {tpl} {status}: body is not JSON: {e}"]
    errs = []
    validate(spec, content[mt]["schema"], body, f"{method} {tpl} {status} body", errs)
    return errs


def cmd_request(spec, method, path, body_file):
    path = path.split("?", 1)[0]
    tpl, op = find_operation(spec, method, path)
    if not op:
        return [f"{method} {path}: no documented operation"]
    rb = op.get("requestBody")
    if rb is None:
        return [f"{method} {tpl}: the hub accepted a body, the document has no requestBody"]
    rb = resolve(spec, rb)
    media = rb.get("content", {}).get("application/json")
    if not media:
        return [f"{method} {tpl}: the request body is not documented as application/json"]
    with open(body_file, "rb") as f:
        body = json.loads(f.read())
    errs = []
    validate(spec, media["schema"], body, f"{method} {tpl} request", errs)
    return errs


HEADING_OP = re.compile(r"^(GET|PUT|POST|DELETE|PATCH|OPTIONS|HEAD|TRACE) (/[^\s\[?]*)(\[\?([^\]]*)\])?$")


def cmd_apimd(spec, md_path):
    documented = {}
    for path, item in spec["paths"].items():
        for m, op in item.items():
            if m not in METHODS:
                continue
            q = set()
            for p in op.get("parameters", []) + item.get("parameters", []):
                p = resolve(spec, p)
                if p["in"] == "query":
                    q.add(p["name"])
            documented[(m.upper(), path)] = q
    headings = {}
    errs = []
    with open(md_path, encoding="utf-8") as f:
        in_code = False
        for n, line in enumerate(f, 1):
            if line.startswith("```"):
                in_code = not in_code
            if in_code or not line.startswith("#"):
                continue
            for span in re.findall(r"`([^`]+)`", line):
                m = HEADING_OP.match(span.strip())
                if not m:
                    continue
                q = set(a.split("=", 1)[0] for a in m.group(4).split("&")) if m.group(4) else set()
                key = (m.group(1), m.group(2))
                if key in headings:
                    errs.append(f"{md_path}:{n}: {key[0]} {key[1]} has a second heading")
                headings[key] = (q, n)
    for key, (q, n) in sorted(headings.items()):
        if key not in documented:
            errs.append(f"{md_path}:{n}: {key[0]} {key[1]} is not in the OpenAPI document")
        elif q != documented[key]:
            errs.append(f"{md_path}:{n}: {key[0]} {key[1]} shows query arguments {sorted(q)}, "
                        f"the OpenAPI document {sorted(documented[key])}")
    for key in sorted(documented):
        if key not in headings:
            errs.append(f"{md_path}: no heading for {key[0]} {key[1]} of the OpenAPI document")
    if not headings:
        errs.append(f"{md_path}: no endpoint heading found")
    return errs


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[2], encoding="utf-8") as f:
        spec = json.load(f)
    if argv[1] == "response" and len(argv) == 8:
        errs = cmd_response(spec, argv[3], argv[4], argv[5], argv[6], argv[7])
    elif argv[1] == "request" and len(argv) == 6:
        errs = cmd_request(spec, argv[3], argv[4], argv[5])
    elif argv[1] == "apimd" and len(argv) == 4:
        errs = cmd_apimd(spec, argv[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for e in errs:
        print(e)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
