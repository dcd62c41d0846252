// Starts Swagger UI on /api/v1/docs (a static file: the CSP forbids inline scripts).
document.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("api-docs");
  if (!root || typeof window.SwaggerUIBundle !== "function") return;
  window.SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    // Requests from "Try it out" carry the token typed under "Authorize".
    persistAuthorization: false,
  });
});
