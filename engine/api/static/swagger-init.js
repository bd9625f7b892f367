// Starts Swagger UI on /docs. A file of its own, not an inline script: the page's CSP allows
// scripts from this host only ('self'), no 'unsafe-inline', no hash, no CDN.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    // The online validator badge would call validator.swagger.io.
    validatorUrl: null,
  });
});
