// Starts swagger-ui on /openapi.json. A file of its own: the Content-Security-Policy allows no inline script.
(() => {
  var root = document.getElementById("swagger-ui");
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute("data-url"),
    domNode: root,
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // No validator badge (it calls an outside service).
    validatorUrl: null,
  });
})();
