/* Lets the ipywidgets HTML manager run from the book's own files (no CDN).
 *
 * Loaded on pages with widgets, after require.js and before embed-amd.js (see
 * nb_ipywidgets_js in _config.yml).
 * 1. embed-amd.js finds its font files relative to the AMD module id
 *    "@jupyter-widgets/html-manager/dist/..."; map that id to _static/offline/html-manager/
 *    (computed from this script's own URL, so it works at any page depth).
 * 2. ipywidgets' HTML views typeset with MathJax 2's MathJax.Hub.Queue; the book uses
 *    MathJax 3, so give them a Hub.Queue that calls MathJax 3's typesetPromise.
 */
(function () {
  var here = document.currentScript && document.currentScript.src;
  if (here && window.require && window.require.config) {
    var staticRoot = here.slice(0, here.lastIndexOf("/") + 1);
    window.require.config({
      paths: { "@jupyter-widgets/html-manager/dist": staticRoot + "offline/html-manager" }
    });
  }

  function queue(job) {
    var mj = window.MathJax;
    var element = job && job[2];
    if (!mj || !mj.startup || !mj.startup.promise || !mj.typesetPromise) {
      return; // MathJax 3 has not started yet: it typesets the whole page when it does
    }
    mj.startup.promise.then(function () {
      return mj.typesetPromise(element ? [element] : undefined);
    });
  }

  function installHub() {
    if (window.MathJax && !window.MathJax.Hub) {
      window.MathJax.Hub = { Queue: queue };
    }
  }

  installHub(); // on MathJax's configuration object, before MathJax 3 itself loads
  document.addEventListener("DOMContentLoaded", installHub); // on MathJax 3 (deferred script)
})();
