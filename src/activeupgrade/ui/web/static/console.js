// Web console: live status bar and buttons from the event stream, operator actions with CSRF.
// Button labels and the status bar mirror ui/web/pages.py.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const $ = (id) => document.getElementById(id);

  function notice(text, ok) {
    const n = $("notice");
    if (!n) return;
    n.textContent = text;
    n.classList.toggle("ok", !!ok);
    n.hidden = !text;
  }

  async function post(path, body) {
    const resp = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = {message: resp.statusText}; }
    if (!resp.ok) {
      const err = new Error(data.message || resp.statusText);
      err.hint = data.hint || "";
      throw err;
    }
    return data;
  }
  window.auPost = post;
  window.auNotice = notice;

  function humanBytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    for (const u of units) {
      if (Math.abs(n) < 1024 || u === "TiB") return u === "B" ? `${n.toFixed(0)} ${u}` : `${n.toFixed(1)} ${u}`;
      n /= 1024;
    }
  }

  function duplexText(s) {
    let text = s.duplex ? "Duplex" : "Simplex";
    const pending = (s.facts || {}).pending_resync || {};
    if (pending.bytes) text += ` (resync pending: ${humanBytes(Number(pending.bytes))})`;
    return text;
  }

  function duration(sec) {
    const s = Math.max(0, Math.round(sec));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
    return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  }

  // The words of present/progress.py (counts_text, where_text).
  function countsText(p) {
    const parts = [];
    if (p.bytes_total || p.bytes_done)
      parts.push(humanBytes(Number(p.bytes_done || 0)) + (p.bytes_total ? ` of ${humanBytes(Number(p.bytes_total))}` : ""));
    if (p.files_total || p.files_done)
      parts.push(`${p.files_done || 0}` + (p.files_total ? ` of ${p.files_total}` : "") + " files");
    if (p.bytes_per_second) parts.push(`${humanBytes(Number(p.bytes_per_second))}/s`);
    if (p.eta !== undefined && p.eta !== null) parts.push(`${duration(Number(p.eta))} left`);
    return parts.join(", ");
  }

  function progressOf(s) {
    const p = s.progress || {};
    if (s.operational_state !== "Busy" || !p.step) return [0, "", ""];
    const total = Math.max(1, Number(p.total || 1));
    const index = Number(p.index || 0);
    const overall = Math.max(0, Math.min(100, Number(p.overall || 0)));
    const phase = s.sub_request ? ` › ${s.sub_request}` : "";
    const where = `${p.request || s.request}${phase} step ${index + 1}/${total}: ${p.step}`;
    const detail = [countsText(p), p.text || ""].filter((x) => x).join(" · ");
    return [Math.round(overall * 10) / 10, where, detail];
  }


  function showProgress(s) {
    const [pct, where, detail] = progressOf(s);
    const bar = $("sb-progress");
    if (bar) { bar.value = pct; bar.textContent = `${pct}%`; }
    const set = (id, v) => { const e = $(id); if (e) e.textContent = v; };
    set("sb-percent", where ? `${pct.toFixed(1)}%` : "");
    set("sb-where", where);
    set("sb-detail", detail);

    if (where) seen.push([s.request, pct]);
  }
  // What the bar showed while requests ran ([request, percent], in order): the browser
  // test checks it never went back and never read 100 before the end.
  const seen = [];
  window.auProgressSeen = () => seen.slice();

  const CONFIRMS = JSON.parse($("confirm-texts")?.textContent || "{}");
  function confirmText(action, s) {
    // An abort that returns data to its checkpoint says to when and where the writes since
    // are kept (present/console.py: confirmation).
    const cost = (s.costs || {})[action] || "";
    const withCheckpoint = CONFIRMS[`${action}@${s.upgrade_state}#checkpoint`];
    if (withCheckpoint && cost.includes("checkpoint")) return withCheckpoint.replace("{cost}", cost);
    return CONFIRMS[`${action}@${s.upgrade_state}`] || "";
  }

  // The confirmation window and the data checkpoints (present/rollback.py words them).
  function timeLeft(sec) {
    const t = Math.max(0, Math.ceil(sec));
    if (t >= 3600) return `${Math.floor(t / 3600)}h ${Math.floor((t % 3600) / 60)}m`;
    if (t >= 60) return `${Math.floor(t / 60)}m ${t % 60}s`;
    return `${t}s`;
  }
  function confirmLine(s) {
    const w = (s.facts || {}).confirm_window;
    if (!w) return "";
    if (w.outcome !== "open") return w.text || "";
    const left = Number(w.deadline) - Date.now() / 1000;
    return `confirm by ${w.deadline_time} (${timeLeft(left)} left), or the merge is aborted automatically`;
  }
  function checkpointLines(s) {
    const facts = s.facts || {};
    const out = [];
    for (const ck of facts.checkpoints || []) {
      const head = `${ck.path}: checkpoint of ${ck.time} (replica ${ck.replica}` + (ck.storage === "reflink" || ck.storage === "snapshot" ? ", reflink clones)" : ")");
      const w = ck.writes || {};
      if (ck.phase === "frozen") {
        out.push(`${head}: ${w.files || 0} file(s) written since — ${w.created || 0} created, ${w.changed || 0} changed, ${w.deleted || 0} deleted (${humanBytes(Number(w.bytes || 0))})`);
        const listed = (w.lines || []).slice(0, 20);
        for (const line of listed) out.push(`  ${line}`);
        const more = Number(w.files || 0) - listed.length;
        if (more > 0) out.push(`  … and ${more} more (au volume show ${ck.volume})`);
      } else if (ck.phase === "restored") {
        out.push(`${head}: data returned to the checkpoint; the writes since are in ${ck.saved}`);
      } else if (ck.phase === "saved") {
        out.push(`${head}: writes since saved in ${ck.saved}`);
      } else if (ck.phase === "released") {
        out.push(`${head}: released, the live data stays`);
      }
    }
    for (const saved of facts.saved_writes || [])
      out.push(`Writes saved aside by an abort: ${saved.folder} (${saved.files || 0} file(s), ${humanBytes(Number(saved.bytes || 0))})`);
    return out;
  }
  function showRollback(s) {
    const box = $("rollback");
    if (!box) return;
    const line = confirmLine(s), lines = checkpointLines(s);
    const windowEl = $("confirm-window"), list = $("checkpoints");
    if (windowEl) { windowEl.textContent = line; windowEl.hidden = !line; }
    if (list) { list.textContent = lines.join("\n"); list.hidden = !lines.length; }
    box.hidden = !line && !lines.length;
  }
  // The time left ticks; the writes since a checkpoint change without a status event.
  let refreshed = 0;
  setInterval(() => {
    if (!last) return;
    const facts = last.facts || {};
    const open = (facts.confirm_window || {}).outcome === "open";
    const frozen = (facts.checkpoints || []).some((c) => c.phase === "frozen");
    if (open) showRollback(last);
    if ((open || frozen) && Date.now() - refreshed > 5000) {
      refreshed = Date.now();
      fetch("/api/status").then((r) => r.ok ? r.json() : null).then((s) => { if (s) showStatus(s); }).catch(() => {});
    }
  }, 1000);

  function label(btn, s) {
    const action = btn.dataset.action, title = btn.dataset.title;
    if ((s.allowed_actions || []).includes(action)) {
      const cost = (s.costs || {})[action] || "";
      const text = cost ? `${title} now: ${cost}` : `${title} now`;
      return action === "commit" ? `${text} (point of no return)` : text;
    }
    return `${title}: not allowed in ${s.upgrade_state} / ${s.operational_state}`;
  }

  // Whether progress p is older than q: the same request, and an earlier step or less
  // far into the same one (progress events change no status time, so an action's answer
  // can carry progress older than the last event's).
  function staler(p, q) {
    if (!p.step) return true;
    if (!q || !q.step || p.request !== q.request) return false;
    const ps = Number(p.started || 0), qs = Number(q.started || 0);
    return ps < qs || (ps === qs && Number(p.overall || 0) < Number(q.overall || 0));
  }

  let last = null;
  function showStatus(s) {
    // An action's answer can arrive after newer events: never go back in time.
    if (last && Number(s.updated || 0) < Number(last.updated || 0)) s = last;
    if (last && s.operational_state === "Busy" && staler(s.progress || {}, last.progress)) {
      s.progress = last.progress;
    }
    last = s;
    const set = (id, v) => { const e = $(id); if (e) e.textContent = v; };
    set("sb-upgrade", s.upgrade_state);
    set("sb-operational", s.operational_state);
    $("sb-operational")?.setAttribute("data-state", s.operational_state);
    set("sb-partner", s.partner_state);
    set("sb-duplex", duplexText(s));
    set("title-config", s.config || "(none: all adopted volumes)");
    showProgress(s);
    for (const btn of document.querySelectorAll("button.action")) {
      btn.disabled = !(s.allowed_actions || []).includes(btn.dataset.action);
      btn.textContent = label(btn, s);
    }
    const broken = $("broken");
    if (broken) broken.hidden = s.operational_state !== "Broken";
    set("broken-reason", s.reason || "");
    set("up-request", s.request);
    set("up-step", s.step || "-");
    set("up-session", s.session || "-");
    set("up-action", s.action || "-");
    set("up-attempt", String(s.attempt));
    document.body.dataset.upgradeState = s.upgrade_state;
    document.body.dataset.operationalState = s.operational_state;
    document.body.dataset.action = s.action || "";
    showRollback(s);
  }

  function progressEvent(p) {
    if (!last) return;
    last.progress = p;
    showProgress(last);
  }

  const ICONS = {debug: "·", info: "ℹ", notice: "●", warning: "⚠", error: "✖", critical: "‼"};
  function logEvent(e) {
    const table = $("log-table");
    if (!table || table.dataset.live !== "yes") return;
    if (e.id <= Number(table.dataset.last || 0)) return;
    table.dataset.last = String(e.id);
    const parentRow = e.parent != null ? table.querySelector(`tr[data-id="${e.parent}"]`) : null;
    const depth = parentRow ? Number(parentRow.dataset.depth) + 1 : 0;
    const tr = document.createElement("tr");
    tr.className = `sev-${e.severity}`;
    tr.dataset.id = String(e.id);
    tr.dataset.depth = String(depth);
    const cells = [e.time.slice(11, 23), null, null, e.event, `${e.side} ${e.request}`];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.className = ["time", "sev", "msg", "event", "where"][i];
      if (i === 1) {
        const icon = document.createElement("span");
        icon.setAttribute("aria-hidden", "true");
        icon.textContent = ICONS[e.severity] || "";
        td.append(icon, ` ${e.severity}`);
      } else if (i === 2) {
        td.style.paddingLeft = `${0.4 + depth * 1.2}em`;
        const a = document.createElement("a");
        a.href = `/log/${e.id}`;
        a.textContent = e.message;
        td.append(a);
      } else {
        td.textContent = text;
      }
      tr.append(td);
    });
    // Keep the tree order: after the parent's last descendant, else at the end.
    let anchor = null;
    if (parentRow) {
      anchor = parentRow;
      let next = parentRow.nextElementSibling;
      while (next && Number(next.dataset.depth) > Number(parentRow.dataset.depth)) {
        anchor = next; next = next.nextElementSibling;
      }
    }
    const body = table.tBodies[0];
    if (anchor) anchor.after(tr); else body.append(tr);
    const count = $("log-shown");
    if (count) count.textContent = String(body.rows.length);
    if (following()) showNewest(tr);
  }

  // The log opens at its newest entry and follows new ones while "Follow" is ticked.
  function following() {
    const box = $("log-follow");
    return !box || box.checked;
  }
  function showNewest(row) {
    const scroller = $("log-scroll");
    if (!scroller || !row) return;
    const top = row.offsetTop - scroller.clientHeight + row.offsetHeight + 8;
    scroller.scrollTop = Math.max(0, top);
    for (const r of scroller.querySelectorAll("tr.newest")) r.classList.remove("newest");
    row.classList.add("newest");
  }
  function openLogAtNewest() {
    const table = $("log-table");
    if (!table) return;
    const last = table.dataset.last;
    const row = table.querySelector(`tr[data-id="${last}"]`);
    showNewest(row);
  }

  function connect() {
    const live = $("sb-live");
    const es = new EventSource("/api/events");
    es.addEventListener("status", (m) => showStatus(JSON.parse(m.data)));
    es.addEventListener("progress", (m) => progressEvent(JSON.parse(m.data)));
    es.addEventListener("log", (m) => logEvent(JSON.parse(m.data)));
    es.onopen = () => { if (live) { live.classList.remove("down"); live.title = "live updates"; } };
    es.onerror = () => { if (live) { live.classList.add("down"); live.title = "reconnecting"; } };
  }

  // Commit (the point of no return) and Abort from Merge ask first.
  function ask(question) {
    const dialog = $("confirm");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(question));
    $("confirm-question").textContent = question;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), {once: true});
      dialog.returnValue = "";
      dialog.showModal();
      $("confirm-no").focus();
    });
  }

  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button.action");
    if (!btn || btn.disabled) return;
    notice("");
    const question = last ? confirmText(btn.dataset.action, last) : "";
    if (question) {
      $("confirm-yes").textContent = btn.dataset.title + " now";
      if (!(await ask(question))) { notice(`${btn.dataset.title} not sent: cancelled.`, true); return; }
    }
    btn.disabled = true;
    try {
      showStatus(await post(`/api/actions/${btn.dataset.action}`, {}));
    } catch (err) {
      notice(`${err.message}${err.hint ? "\n" + err.hint : ""}`);
      if (last) showStatus(last);
    }
  });

  if (document.body.dataset.page) { connect(); openLogAtNewest(); }
})();
