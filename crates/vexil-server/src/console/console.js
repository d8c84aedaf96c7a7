// Vexil console: the few things a server-rendered form cannot do by itself. Everything works
// through event delegation on the document, so rows added later behave like the first ones.
"use strict";

// The same rule as the server's key_from_name: lowercase; runs of anything but letters,
// digits, "." and "_" become one "-"; no leading or trailing "-"; at most 128 characters.
function keyFromName(name) {
  let key = "";
  let dash = false;
  for (const c of name.toLowerCase()) {
    if (/[a-z0-9._]/.test(c)) {
      if (dash && key.length > 0) key += "-";
      dash = false;
      key += c;
    } else {
      dash = true;
    }
    if (key.length >= 128) break;
  }
  return key.slice(0, 128);
}

// A generated key with the prefix its field asks for (`mutex-`, `holdout-`), not doubled.
function generatedKey(target, name) {
  const key = keyFromName(name);
  const prefix = target.dataset.keyPrefix || "";
  return key === "" || key.startsWith(prefix) ? key : (prefix + key).slice(0, 128);
}

// Generated keys and values follow the name until someone edits them by hand.
document.addEventListener("input", (event) => {
  const el = event.target;
  if (el.dataset && el.dataset.generated === undefined && (el.dataset.keyTarget || el.dataset.valueTarget)) {
    for (const id of [el.dataset.keyTarget, el.dataset.valueTarget]) {
      const target = id && document.getElementById(id);
      if (target && !target.dataset.edited) target.value = generatedKey(target, el.value);
    }
  } else if (el.id && document.querySelector(`[data-key-target="${el.id}"], [data-value-target="${el.id}"]`)) {
    el.dataset.edited = "1";
  }
  const weights = el.closest && el.closest("[data-weights]");
  if (weights) updateShares(weights);
  const slots = el.closest && el.closest("[data-slots]");
  if (slots) renumberSlots(slots);
  if (el.matches && el.matches(".condition textarea.values")) pickCohorts(el.closest(".condition"));
  if (el.dataset && el.dataset.liveFilter) liveFilter(el);
  markUnsaved(el);
});

// A form marked `data-unsaved` that was edited and not submitted: leaving the page asks first.
function markUnsaved(el) {
  const form = el.form || (el.closest && el.closest("form"));
  if (form && form.dataset.unsaved !== undefined) form.dataset.unsaved = "edited";
}
let submitting = false;
window.addEventListener("beforeunload", (event) => {
  if (!submitting && document.querySelector("form[data-unsaved=edited]")) {
    event.preventDefault();
    event.returnValue = "";
  }
});

// A search box with `data-live-filter` hides, as you type, the rows (its selector) whose text
// does not contain what is typed; submitting the form still searches on the server, past this
// page's rows.
function liveFilter(input) {
  const words = input.value.trim().toLowerCase();
  let shown = 0;
  const rows = document.querySelectorAll(input.dataset.liveFilter);
  for (const row of rows) {
    const match = words === "" || row.textContent.toLowerCase().includes(words);
    row.hidden = !match;
    if (match) shown++;
  }
  const count = document.getElementById(input.getAttribute("aria-describedby"));
  if (count) count.textContent = words === "" ? "" : ` — ${shown} of ${rows.length} shown on this page`;
}

// The cohort picker and the values of a cohort condition (one cohort id per line) stay in
// step: choosing names writes their ids, typing ids selects their names.
function pickCohorts(condition) {
  const picker = condition.querySelector(".cohort-picker");
  const values = condition.querySelector("textarea.values");
  if (!picker || !values) return;
  const ids = new Set(values.value.split("\n").map((v) => v.trim()).filter((v) => v !== ""));
  for (const option of picker.options) option.selected = ids.has(option.value);
}

// The slot editor: rows numbered in order (slots are numbered by position), and the total
// with what it leaves unallocated.
function renumberSlots(editor) {
  const rows = [...editor.querySelectorAll(".slot-row")];
  let total = 0;
  rows.forEach((row, n) => {
    row.querySelector(".slot-number").textContent = String(n + 1);
    row.querySelector(".remove-slot").setAttribute("aria-label", `Remove slot ${n + 1}`);
    total += Math.max(0, parseInt(row.querySelector("input").value, 10) || 0);
  });
  const line = editor.querySelector(".slot-total");
  if (line) {
    line.textContent = total > 100
      ? `The slots total ${total}%: at most 100% is allowed.`
      : `The slots total ${total}%; ${100 - total}% of users are in no slot (unallocated).`;
    line.classList.toggle("warning", total > 100);
  }
}

// The share of each weight in a rollout: weights 1 and 4 show 20% and 80%.
function updateShares(weights) {
  const inputs = [...weights.querySelectorAll("input[type=number]")];
  const values = inputs.map((i) => Math.max(0, parseInt(i.value, 10) || 0));
  const total = values.reduce((a, b) => a + b, 0);
  inputs.forEach((input, n) => {
    const share = input.parentElement.querySelector(".share");
    if (share) share.textContent = total === 0 ? "0%" : `${Math.round((values[n] * 1000) / total) / 10}%`;
  });
}

document.addEventListener("click", async (event) => {
  const el = event.target.closest("button");
  if (!el) return;
  if (el.dataset.dialog) {
    document.getElementById(el.dataset.dialog)?.showModal();
  } else if (el.dataset.close) {
    document.getElementById(el.dataset.close)?.close();
  } else if (el.classList.contains("copy")) {
    try {
      await navigator.clipboard.writeText(el.dataset.copy);
      el.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(el.previousElementSibling || el);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
    }
  } else if (el.id === "add-segment") {
    const segments = document.getElementById("segments");
    const index = segments.dataset.next++;
    const html = document.getElementById("segment-template").innerHTML.replaceAll("__S__", index);
    segments.insertAdjacentHTML("beforeend", html);
  } else if (el.classList.contains("add-condition")) {
    const list = el.closest(".segment").querySelector(".conditions");
    const index = list.dataset.next++;
    const prefix = `${list.dataset.prefix}.conditions[${index}]`;
    const html = document.getElementById("condition-template").innerHTML.replaceAll("__P__", prefix);
    list.insertAdjacentHTML("beforeend", html);
  } else if (el.classList.contains("remove-condition")) {
    el.closest(".condition").remove();
  } else if (el.classList.contains("remove-segment")) {
    el.closest(".segment").remove();
  } else if (el.id === "add-slot") {
    const editor = el.closest("[data-slots]");
    const html = editor.querySelector("template").innerHTML;
    editor.querySelector(".slot-rows").insertAdjacentHTML("beforeend", html);
    renumberSlots(editor);
    const inputs = editor.querySelectorAll(".slot-row input");
    inputs[inputs.length - 1].focus();
  } else if (el.classList.contains("remove-slot")) {
    const editor = el.closest("[data-slots]");
    el.closest(".slot-row").remove();
    renumberSlots(editor);
  }
});

// The prerequisite picker shows the variants of the flag chosen; hidden ones are disabled so
// that they are not submitted.
function showVariantSet(select) {
  for (const set of document.querySelectorAll("fieldset[data-for]")) {
    const mine = set.dataset.for === select.value;
    set.hidden = !mine;
    set.disabled = !mine;
  }
}

document.addEventListener("change", (event) => {
  const el = event.target;
  if (el.matches("select[data-variant-sets]")) showVariantSet(el);
  if (el.matches(".condition select.target")) el.closest(".condition").dataset.target = el.value;
  if (el.matches(".condition .cohort-picker")) {
    const values = el.closest(".condition").querySelector("textarea.values");
    values.value = [...el.selectedOptions].map((o) => o.value).join("\n");
  }
  markUnsaved(el);
  if (el.matches("input[type=file][name=file]")) {
    const file = el.files && el.files[0];
    const members = el.form.querySelector("textarea[name=members]");
    if (file && members) file.text().then((text) => { members.value = text; });
  }
});

// JSON fields are checked before they are sent (the server checks again): the reason shows
// under the field. Destructive forms (`data-confirm`) ask first.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
    return;
  }
  submitting = true;
  for (const field of event.target.querySelectorAll("textarea[data-json]")) {
    field.parentElement.querySelector(".error")?.remove();
    if (field.value.trim() === "") continue;
    try {
      JSON.parse(field.value);
    } catch (e) {
      const error = document.createElement("p");
      error.className = "error";
      error.setAttribute("role", "alert");
      error.textContent = `The payload must be JSON: ${e.message}`;
      field.insertAdjacentElement("afterend", error);
      field.focus();
      event.preventDefault();
      submitting = false;
    }
  }
});

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("select[data-variant-sets]").forEach(showVariantSet);
  document.querySelectorAll("[data-slots]").forEach(renumberSlots);
});
