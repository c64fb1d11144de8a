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
})();
