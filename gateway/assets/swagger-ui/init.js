// Starts Swagger UI on the OpenAPI document named by the page (same origin).
(function () {
  var root = document.getElementById('swagger-ui');
  SwaggerUIBundle({
    url: root.getAttribute('data-spec'),
    dom_id: '#swagger-ui',
    deepLinking: true,
    // No calls to the public validator service: nothing leaves the origin.
    validatorUrl: null,
  });
})();
