// Renders the OpenAPI document as a list of endpoints: no framework, no network beyond our origin.
"use strict";
(function () {
  const root = document.getElementById("spec");
  if (!root) return;
  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  };
  const refName = (ref) => ref.split("/").pop();
  function describe(schema, spec, depth) {
    if (!schema) return "";
    if (schema.$ref) {
      const name = refName(schema.$ref);
      const target = spec.components.schemas[name];
      return depth > 0 ? name : name + " " + describe(target, spec, depth + 1);
    }
    if (schema.properties) {
      const required = new Set(schema.required || []);
      const fields = Object.entries(schema.properties).map(([key, value]) =>
        key + (required.has(key) ? "" : "?") + ": " + (value.type || (value.$ref ? refName(value.$ref) :
          (value.anyOf || []).map((v) => v.type || (v.$ref ? refName(v.$ref) : "")).join("|"))));
      return "{ " + fields.join(", ") + " }";
    }
    return schema.type || "";
  }
  fetch(root.dataset.specUrl, { credentials: "same-origin" })
    .then((r) => r.json())
    .then((spec) => {
      const byTag = {};
      for (const [path, item] of Object.entries(spec.paths)) {
        for (const [method, op] of Object.entries(item)) {
          const tag = (op.tags || ["other"])[0];
          (byTag[tag] = byTag[tag] || []).push([method.toUpperCase(), path, op]);
        }
      }
      for (const [tag, ops] of Object.entries(byTag)) {
        const section = el("section");
        section.appendChild(el("h2", tag));
        const list = el("dl", undefined, "endpoints");
        for (const [method, path, op] of ops) {
          const term = el("dt");
          term.appendChild(el("span", method, "method method-" + method.toLowerCase()));
          term.appendChild(el("code", " " + path));
          list.appendChild(term);
          const desc = el("dd");
          desc.appendChild(el("p", op.summary || ""));
          const params = (op.parameters || []).map((p) => p.name + " (" + p.in + (p.required ? ", required" : "") + ")");
          if (params.length) desc.appendChild(el("p", "Parameters: " + params.join(", ")));
          const body = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
          if (body) desc.appendChild(el("p", "Body: " + describe(body.schema, spec, 0)));
          list.appendChild(desc);
        }
        section.appendChild(list);
        root.appendChild(section);
      }
    })
    .catch((err) => { root.appendChild(el("p", "Could not load the document: " + err)); });
})();
