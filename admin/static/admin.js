// pbx-agent admin: the little that needs a script. Everything works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // managers <-> extensions: Save appears once a dropdown changes; an extension picked for one manager
  // is taken from whoever had it (the server does the same)
  document.querySelectorAll("form#mapping").forEach(function (form) {
    var save = form.querySelector("[data-show-on-change]");
    if (save) { save.hidden = true; }
    var selects = form.querySelectorAll("select[data-mapping]");
    selects.forEach(function (select) {
      select.addEventListener("change", function () {
        if (select.value) {
          selects.forEach(function (other) {
            if (other !== select && other.value === select.value) { other.value = ""; }
          });
        }
        if (save) { save.hidden = false; }
      });
    });
  });
  // routing: typing working hours for the company chooses "open only at these hours"
  var schedule = document.getElementById("hours-schedule");
  if (schedule) {
    document.querySelectorAll("#when input[data-hours]").forEach(function (input) {
      input.addEventListener("input", function () { if (input.value.trim()) { schedule.checked = true; } });
    });
  }
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) { return; }
      if (source.select) { source.select(); }
      if (navigator.clipboard) { navigator.clipboard.writeText(source.value || source.textContent).catch(function () {}); }
    });
  });
});
