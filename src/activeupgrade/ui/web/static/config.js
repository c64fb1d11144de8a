// Configuration page: child-configuration check boxes edit the `include = [...]` line.
"use strict";
(function () {
  const text = document.getElementById("text");
  if (!text) return;
  const INCLUDE = /^include\s*=\s*\[[^\]]*\]\s*$/m;
  function setIncludes() {
    const names = [...document.querySelectorAll("input.include:not(:disabled):checked")]
      .map((b) => JSON.stringify(b.value));
    const line = `include = [${names.join(", ")}]`;
    if (INCLUDE.test(text.value)) text.value = text.value.replace(INCLUDE, line);
    else {
      // Top-level keys must come before the first table header.
      const at = text.value.search(/^\[/m);
      text.value = at < 0 ? `${text.value.trimEnd()}\n${line}\n`
        : `${text.value.slice(0, at)}${line}\n\n${text.value.slice(at)}`;
    }
  }
  for (const box of document.querySelectorAll("input.include")) box.addEventListener("change", setIncludes);

  // Field editors: each writes TOML into the text; the API validates it on Validate/Save.
  const val = (id) => document.getElementById(id).value.trim();
  const q = (v) => JSON.stringify(v);
  function setTopLevel(key, line) {
    const re = new RegExp(`^${key}\\s*=.*$`, "m");
    if (re.test(text.value)) { text.value = text.value.replace(re, line); return; }
    const at = text.value.search(/^\[/m);
    text.value = at < 0 ? `${line}\n${text.value}` : `${text.value.slice(0, at)}${line}\n\n${text.value.slice(at)}`;
  }
  function append(block) { text.value = `${text.value.trimEnd()}\n\n${block}\n`; }
  function on(id, fn) { document.getElementById(id)?.addEventListener("click", fn); }
  on("b-set-description", () => setTopLevel("description", `description = ${q(val("b-description"))}`));
  on("b-add-volume", () => {
    if (!val("b-volume-path")) return;
    append(`[[volume]]\npath = ${q(val("b-volume-path"))}\nrole = ${q(val("b-volume-role"))}`);
  });
  on("b-add-service", () => {
    if (!val("b-service-name")) return;
    const argv = val("b-service-command").split(/\s+/).filter(Boolean);
    let block = `[[service]]\nname = ${q(val("b-service-name"))}\ncommand = ${q(argv)}`;
    if (val("b-service-listen")) block += `\n\n[[service.socket]]\nname = "main"\nlisten = ${q(val("b-service-listen"))}`;
    append(block);
  });
  on("b-add-action", () => {
    if (!val("b-action-file")) return;
    const name = val("b-action-name") ? `name = ${q(val("b-action-name"))}\n` : "";
    append(`[[action]]\n${name}file = ${q(val("b-action-file"))}\ncontrol = ${q(val("b-action-control"))}\ntiming = ${q(val("b-action-timing"))}`);
  });
  on("b-add-backup", () => {
    const path = val("b-backup-path");
    if (!path) return;
    const re = /^(\[backup\][^\[]*?^paths\s*=\s*\[)([^\]]*)\]/m;
    const m = text.value.match(re);
    if (m) {
      const items = m[2].trim().replace(/,\s*$/, "");
      text.value = text.value.replace(re, `$1${items ? items + ", " : ""}${q(path)}]`);
    } else if (/^\[backup\]\s*$/m.test(text.value)) {
      text.value = text.value.replace(/^\[backup\]\s*$/m, `[backup]\npaths = [${q(path)}]`);
    } else {
      append(`[backup]\npaths = [${q(path)}]`);
    }
  });
})();
