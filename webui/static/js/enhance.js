/* Small niceties on top of pages that already work without script: copy buttons, a character count under
   long text boxes, and focus moved to a form's error summary so screen readers announce it. */
(function () {
  "use strict";

  document.querySelectorAll("[data-copy]").forEach(function (button) {
    var target = document.getElementById(button.getAttribute("data-copy"));
    if (!target || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(target.textContent.trim()).then(function () {
        button.textContent = "Copied";
        window.setTimeout(function () { button.textContent = "Copy"; }, 2000);
      });
    });
  });

  document.querySelectorAll("textarea[data-counter][maxlength]").forEach(function (area) {
    var max = Number(area.getAttribute("maxlength"));
    var counter = document.createElement("span");
    counter.className = "counter";
    counter.setAttribute("aria-live", "polite");
    area.insertAdjacentElement("afterend", counter);
    function update() {
      var left = max - area.value.length;
      counter.textContent = left < max * 0.2 ? left + " characters left" : "";
    }
    area.addEventListener("input", update);
    update();
  });

  var summary = document.querySelector("[data-autofocus]");
  if (summary) summary.focus();
})();
