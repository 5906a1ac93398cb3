// Starts Swagger UI over the gateway's own OpenAPI document. Kept in a file rather than inline
// in the page: the page's Content-Security-Policy allows no inline script.
"use strict";

window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  // The plain layout: no top bar with a box to load some other document.
  layout: "BaseLayout",
  deepLinking: true,
  filter: true,
  displayRequestDuration: true,
  // The token typed into "Authorize" lives only as long as the page, like the dashboard's key.
  persistAuthorization: false,
  // Never ask the public validator service about the document (and the page works offline).
  validatorUrl: null,
});
