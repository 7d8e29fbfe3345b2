// The review page. Plain JavaScript, no framework, no other server: every request goes to the page's own origin.
// Text from the data is only ever put into the page as text (textContent, text nodes), never as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ACTIONS = { KeyS: skip, KeyU: unusable, ArrowRight: next, ArrowLeft: previous };

  let queue = { ids: [], status: [] }; // the rows shown, in review order, and their statuses
  let at = 0; // the position in `queue` of the row on screen
  let row = null; // the row on screen, as /api/row gave it
  const versions = {}; // row id -> the version of it this page last saw (sent with every change)
  let pending = Promise.resolve(); // changes go to the server one at a time, in order

  // ---- talking to the server

  async function api(path, body) {
    const options = { credentials: "same-origin" };
    if (body !== undefined) {
      Object.assign(options, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    }
    const answer = await fetch(path, options);
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      const error = new Error(data.detail || `the server answered ${answer.status}`);
      error.status = answer.status;
      throw error;
    }
    return data;
  }

  // Run `task` after every change sent before it; a failure is shown and does not stop the next one.
  function inOrder(task) {
    const done = pending.then(task);
    pending = done.catch(() => {});
    return done;
  }

  function say(text, kind) {
    $("status").textContent = text;
    $("status").className = kind || "";
  }

  // ---- what the page shows

  function showSummary(summary) {
    $("csv").textContent = summary.csv;
    $("counts").textContent =
      `${summary.reviewed} reviewed / ${summary.in_queue} in queue / ${summary.total} total` +
      ` · ${summary.skipped} skipped · ${summary.corrected} corrected`;
    $("audit").textContent = summary.audit.sentence;
    $("audit").className = summary.audit.verdict === "below" ? "below" : "";
    const select = $("filter-field");
    if (select.options.length === 1) {
      for (const name of summary.fields) select.add(new Option(name, name));
    }
  }

  function confidenceChip(confidence) {
    const chip = document.createElement("span");
    if (confidence === null) {
      chip.className = "confidence none";
      chip.textContent = "—";
      chip.title = "no confidence (no answer, or one read only after repair)";
    } else {
      chip.className = "confidence";
      chip.textContent = confidence.toFixed(2);
      chip.style.backgroundColor = `hsl(${Math.round(120 * confidence)}, 75%, 80%)`; // red (0) to green (1)
      chip.title = `the model's confidence in this field: ${confidence}`;
    }
    return chip;
  }

  function showText(segments, colours) {
    const box = $("text");
    box.replaceChildren();
    for (const piece of segments) {
      if (piece.field === null) {
        box.append(document.createTextNode(piece.text));
      } else {
        const mark = document.createElement("mark");
        mark.className = colours[piece.field];
        mark.title = piece.field;
        mark.textContent = piece.text;
        box.append(mark);
      }
    }
  }

  function colourOf(fields) {
    return Object.fromEntries(fields.map((field, i) => [field.name, `f${i % 6}`]));
  }

  function showRow(data) {
    row = data;
    versions[row.id] = row.version;
    const colours = colourOf(row.fields);
    $("where").textContent = `row ${at + 1} of ${queue.ids.length} · id ${row.id} · ${row.status}`;
    $("note").textContent = {
      missing: "The model gave no JSON for this text.",
      repaired: "The model's JSON was read only after repair; its fields have no confidence.",
      strict: "",
    }[row.answer];
    showText(row.segments, colours);
    const form = $("fields");
    // Inputs about to go may still fire "change" (Chrome does, for a focused one): what they hold was sent
    // already, or refused on purpose (another tab changed the row), so they must not save it again.
    for (const old of form.querySelectorAll("input")) old.dataset.gone = "yes";
    form.replaceChildren();
    let weakest = null;
    for (const field of row.fields) {
      const input = document.createElement("input");
      input.id = `field-${field.name}`;
      input.name = field.name;
      input.value = field.value;
      input.dataset.saved = field.value;
      input.classList.toggle("changed", field.changed);
      const id = row.id; // a late "change" (the input already off screen) still belongs to this row
      input.addEventListener("change", () => saveField(input, id));
      const label = document.createElement("label");
      label.htmlFor = input.id;
      label.className = colours[field.name];
      label.textContent = field.name;
      const model = document.createElement("span");
      model.className = "model";
      model.textContent = field.changed ? `the model said: ${field.model || "(no field)"}` : "";
      form.append(label, input, confidenceChip(field.confidence), model);
      const rank = field.confidence === null ? -1 : field.confidence;
      if (weakest === null || rank < weakest.rank) weakest = { input, rank };
    }
    $("row").hidden = false;
    $("empty").hidden = true;
    if (weakest) {
      weakest.input.focus(); // the least confident field first: the one most likely to need a correction
      weakest.input.select();
    }
  }

  // After a save, show what the server now holds without touching what is being typed elsewhere.
  function refreshRow(data) {
    if (!row || data.id !== row.id) return;
    row = data;
    versions[row.id] = row.version;
    showText(row.segments, colourOf(row.fields));
    $("where").textContent = `row ${at + 1} of ${queue.ids.length} · id ${row.id} · ${row.status}`;
    for (const field of row.fields) {
      const input = $(`field-${field.name}`);
      if (!input) continue;
      input.dataset.saved = field.value;
      input.classList.toggle("changed", field.changed);
      input.nextElementSibling.nextElementSibling.textContent = field.changed
        ? `the model said: ${field.model || "(no field)"}`
        : "";
    }
  }

  async function go(position) {
    if (!queue.ids.length) {
      $("row").hidden = true;
      $("empty").hidden = false;
      return;
    }
    at = Math.max(0, Math.min(position, queue.ids.length - 1));
    showRow(await api(`/api/row?id=${encodeURIComponent(queue.ids[at])}`));
  }

  async function loadQueue() {
    const field = $("filter-field").value;
    const below = $("filter-below").value;
    const query = new URLSearchParams();
    if (field) query.set("field", field);
    if (below) query.set("below", below);
    queue = await api(`/api/queue?${query}`);
    $("shown").textContent = field || below ? `${queue.ids.length} rows shown` : "";
    return queue.start;
  }

  // ---- changes

  function typedValues() {
    const values = {};
    for (const input of $("fields").querySelectorAll("input")) values[input.name] = input.value;
    return values;
  }

  function unsaved() {
    const values = {};
    for (const input of $("fields").querySelectorAll("input")) {
      if (input.value !== input.dataset.saved) values[input.name] = input.value;
    }
    return values;
  }

  // Send a change of row `id`; the page says "saved" only once the server answers that it has it.
  function send(path, id, body) {
    say("saving…");
    return inOrder(async () => {
      try {
        const answer = await api(path, { id, version: versions[id] ?? 0, ...body });
        versions[id] = answer.row.version;
        showSummary(answer.summary);
        say(`saved ${new Date().toLocaleTimeString()}`, "saved");
        return answer.row;
      } catch (error) {
        say(`not saved: ${error.message}`, "error");
        if (error.status === 409 && row && row.id === id) {
          const fresh = await api(`/api/row?id=${encodeURIComponent(id)}`);
          showRow(fresh); // the other tab's version, to redo the change on
          say(`not saved: ${error.message} It now shows the other tab's change.`, "error");
        }
        throw error;
      }
    });
  }

  function saveField(input, id) {
    if (input.dataset.gone || input.value === input.dataset.saved) return;
    send("/api/save", id, { values: { [input.name]: input.value } })
      .then(refreshRow)
      .catch(() => {});
  }

  async function decide(status) {
    if (!row) return;
    const id = row.id;
    const position = at;
    try {
      await send("/api/decide", id, { status, values: typedValues() });
    } catch {
      return;
    }
    queue.status[position] = status;
    if (row && row.id === id && at === position) await go(nextToReview(position));
  }

  function nextToReview(position) {
    const n = queue.ids.length;
    for (let step = 1; step <= n; step++) {
      const i = (position + step) % n;
      if (queue.status[i] === "open") return i;
    }
    return Math.min(position + 1, n - 1);
  }

  function accept() {
    return decide("accepted");
  }
  function skip() {
    return decide("skipped");
  }
  function unusable() {
    return decide("unusable");
  }

  // Moving on saves what was typed first (a field left by a key is not "changed" yet).
  async function move(step) {
    if (!row) return;
    const values = unsaved();
    if (Object.keys(values).length) {
      try {
        await send("/api/save", row.id, { values });
      } catch {
        return;
      }
    }
    await go(at + step);
  }
  function next() {
    return move(1);
  }
  function previous() {
    return move(-1);
  }

  async function undo() {
    say("undoing…");
    try {
      const answer = await inOrder(() => api("/api/undo", {}));
      showSummary(answer.summary);
      await loadQueue();
      const position = queue.ids.indexOf(answer.row.id);
      if (position >= 0) {
        at = position;
        showRow(answer.row);
      }
      say(`undone: row ${answer.row.id} ${new Date().toLocaleTimeString()}`, "saved");
    } catch (error) {
      say(error.message, "error");
    }
  }

  // ---- keys

  function onKey(event) {
    const target = event.target;
    const inField = target instanceof HTMLInputElement && target.form === $("fields");
    const typing = target instanceof HTMLInputElement || target instanceof HTMLSelectElement;
    const plain = !event.altKey && !event.ctrlKey && !event.metaKey;
    if (event.key === "Enter" && plain && !event.shiftKey && (inField || target === document.body)) {
      event.preventDefault();
      accept();
      return;
    }
    if (event.key === "Escape" && inField) {
      target.blur();
      return;
    }
    let action = null;
    if (event.altKey && !event.ctrlKey && !event.metaKey) {
      action = event.code === "KeyZ" ? undo : ACTIONS[event.code];
    } else if (!typing && event.ctrlKey && !event.altKey && event.code === "KeyZ") {
      action = undo;
    } else if (!typing && plain && !event.shiftKey) {
      action = ACTIONS[event.code];
    }
    if (action) {
      event.preventDefault();
      action();
    }
  }

  // ---- start

  async function start() {
    document.addEventListener("keydown", onKey);
    $("accept").addEventListener("click", accept);
    $("skip").addEventListener("click", skip);
    $("unusable").addEventListener("click", unusable);
    $("next").addEventListener("click", next);
    $("prev").addEventListener("click", previous);
    $("undo").addEventListener("click", undo);
    $("filter").addEventListener("submit", async (event) => {
      event.preventDefault();
      await go(await loadQueue());
    });
    $("filter-clear").addEventListener("click", async () => {
      $("filter-field").value = "";
      $("filter-below").value = "";
      await go(await loadQueue());
    });
    try {
      showSummary(await api("/api/summary"));
      await go(await loadQueue()); // the first row not reviewed yet: where the last visit stopped
    } catch (error) {
      say(`could not load the review: ${error.message}`, "error");
    }
  }

  start();
})();
