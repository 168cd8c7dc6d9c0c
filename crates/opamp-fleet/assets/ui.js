// opampd web UI: live updates. Without this script every page still works (reload to
// refresh). With it, the page listens to the admin API's event stream and, after a burst of
// events, fetches fresh copies of its live regions (elements with data-live="<id>", served
// by the same URL with ?fragment=<id>) and swaps them in place.
(function () {
  "use strict";
  var source = document.body && document.body.getAttribute("data-live-events");
  var regions = document.querySelectorAll("[data-live]");
  var status = document.getElementById("live-status");
  if (!source || regions.length === 0 || !window.EventSource || !window.fetch) {
    if (status) status.textContent = "Live updates off";
    return;
  }
  function setStatus(state, text) {
    if (!status) return;
    status.setAttribute("data-state", state);
    status.textContent = text;
  }

  var timer = null;
  var again = null;
  var inflight = false;
  var pending = false;

  function fragmentUrl(id) {
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", id);
    url.searchParams.delete("done");
    return url.toString();
  }

  function swap(el, html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    var fresh = tpl.content.firstElementChild;
    if (!fresh || fresh.getAttribute("data-live") !== el.getAttribute("data-live")) return;
    // Keep focus on an equivalent element when the user was inside the region.
    var active = document.activeElement;
    var focusHref = active && el.contains(active) ? active.getAttribute("href") : null;
    el.replaceWith(fresh);
    if (focusHref) {
      var again = fresh.querySelector('[href="' + focusHref.replace(/"/g, '\\"') + '"]');
      if (again) again.focus();
    }
  }

  function refresh() {
    if (inflight) { pending = true; return; }
    inflight = true;
    var live = document.querySelectorAll("[data-live]");
    var jobs = Array.prototype.map.call(live, function (el) {
      var id = el.getAttribute("data-live");
      return fetch(fragmentUrl(id), { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) swap(el, html); })
        .catch(function () {});
    });
    Promise.all(jobs).then(function () {
      inflight = false;
      document.dispatchEvent(new CustomEvent("opamp:refreshed"));
      if (pending) { pending = false; schedule(); }
    });
  }

  // Debounce: one refresh after a burst, and one more a moment later (agent reports are
  // written to the store in small batches just after the event, and the server reuses its
  // copy of the agent list for up to 2 s while no new event arrives).
  function schedule() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(refresh, 300);
    if (again) clearTimeout(again);
    again = setTimeout(refresh, 2500);
  }

  var types = [
    "agent_connected", "agent_disconnected", "agent_updated", "agent_deleted",
    "labels_changed", "config_version_added", "config_deleted", "assignment_changed",
    "assignment_deleted", "group_changed", "group_deleted", "command_queued", "resync"
  ];
  var es;
  function connect() {
    es = new EventSource(source, { withCredentials: true });
    // Events sent between this page's render and the stream's (re)opening are not
    // replayed: catch up once on every open.
    es.onopen = function () { setStatus("on", "Live"); schedule(); };
    es.onerror = function () {
      setStatus("error", "Live updates reconnecting…");
    };
    types.forEach(function (t) { es.addEventListener(t, schedule); });
    es.onmessage = schedule;
  }
  connect();
  window.addEventListener("pagehide", function () { if (es) es.close(); });
  // The stream carries agent reports from this replica only: refresh a visible page every
  // 30 s too, for agents held by other replicas sharing the store.
  setInterval(function () {
    if (document.visibilityState === "visible") schedule();
  }, 30000);
})();
