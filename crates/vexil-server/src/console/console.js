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

// Generated keys and values follow the name until someone edits them by hand.
document.addEventListener("input", (event) => {
  const el = event.target;
  if (el.dataset && el.dataset.generated === undefined && (el.dataset.keyTarget || el.dataset.valueTarget)) {
    for (const id of [el.dataset.keyTarget, el.dataset.valueTarget]) {
      const target = id && document.getElementById(id);
      if (target && !target.dataset.edited) target.value = keyFromName(el.value);
    }
  } else if (el.id && document.querySelector(`[data-key-target="${el.id}"], [data-value-target="${el.id}"]`)) {
    el.dataset.edited = "1";
  }
  const weights = el.closest && el.closest("[data-weights]");
  if (weights) updateShares(weights);
});

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
  if (el.matches("input[type=file][name=file]")) {
    const file = el.files && el.files[0];
    const members = el.form.querySelector("textarea[name=members]");
    if (file && members) file.text().then((text) => { members.value = text; });
  }
});

// JSON fields are checked before they are sent (the server checks again): the reason shows
// under the field.
document.addEventListener("submit", (event) => {
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
    }
  }
});

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("select[data-variant-sets]").forEach(showVariantSet);
});
