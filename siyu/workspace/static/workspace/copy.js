/* One-tap copy: any element with data-copy puts its text on the clipboard (WeCom's in-app
   browser may lack the async clipboard API, hence the textarea fallback). */
(function () {
  function fallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } finally { document.body.removeChild(area); }
  }
  function done(el) {
    var label = el.textContent;
    el.textContent = el.getAttribute("data-copied") || "✓";
    setTimeout(function () { el.textContent = label; }, 1500);
  }
  document.addEventListener("click", function (event) {
    var el = event.target.closest("[data-copy]");
    if (!el) return;
    var text = el.getAttribute("data-copy");
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { done(el); }, function () {
        fallback(text); done(el);
      });
    } else {
      fallback(text); done(el);
    }
  });
})();
