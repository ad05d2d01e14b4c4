// The status page's live part: poll /ui/events for newer events and the kill
// switch's state every few seconds. Every string goes in with textContent,
// never as HTML, so a hostile resource name stays text.
(function () {
  "use strict";
  var body = document.getElementById("events");
  if (!body) { return; }
  var after = Number(body.getAttribute("data-after") || "0");
  var live = document.getElementById("live");
  var MAX_ROWS = 200;

  function cell(text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    return td;
  }

  function addEvent(e) {
    var tr = document.createElement("tr");
    tr.className = e.row;
    tr.appendChild(cell(e.ts, "nowrap"));
    tr.appendChild(cell(e.label, "nowrap"));
    tr.appendChild(cell(e.resource, "id"));
    tr.appendChild(cell(e.reason, ""));
    body.insertBefore(tr, body.firstChild);
    while (body.rows.length > MAX_ROWS) { body.deleteRow(body.rows.length - 1); }
  }

  function showSwitch(ks) {
    var state = document.getElementById("ks-state");
    if (!state || !ks) { return; }
    state.textContent = ks.engaged ? "ENGAGED" : "released";
    state.className = "state " + (ks.engaged ? "bad" : "good");
    var fields = { "ks-actor": ks.actor, "ks-reason": ks.reason, "ks-when": (ks.changed_at || "").replace(/\.\d+/, "") };
    Object.keys(fields).forEach(function (id) {
      var dd = document.getElementById(id);
      if (dd) { dd.textContent = fields[id] || "\u2014"; }
    });
    // Flipped elsewhere (the CLI, the API): the form below is for the old state.
    var card = document.getElementById("killswitch");
    var note = document.getElementById("ks-changed");
    if (card && note) {
      note.hidden = (card.getAttribute("data-engaged") === "true") === ks.engaged;
    }
  }

  function showHealth(h) {
    var pill = document.getElementById("health");
    var detail = document.getElementById("health-detail");
    if (!pill || !h) { return; }
    pill.textContent = h.ok ? "loop healthy" : "loop UNHEALTHY";
    pill.className = "pill " + (h.ok ? "good" : "bad");
    if (detail) { detail.textContent = h.detail; }
  }

  function poll() {
    fetch("/ui/events?after=" + after, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
      .then(function (data) {
        data.events.forEach(function (e) { addEvent(e); after = Math.max(after, e.id); });
        showSwitch(data.killswitch);
        showHealth(data.health);
        live.textContent = "live · " + new Date().toLocaleTimeString();
      })
      .catch(function () { live.textContent = "live updates paused (daemon unreachable)"; })
      .then(function () { window.setTimeout(poll, 2000); });
  }
  window.setTimeout(poll, 2000);
}());
