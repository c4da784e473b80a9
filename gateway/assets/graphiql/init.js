// Starts GraphiQL against the endpoint named by the page (same origin).
(function () {
  var root = document.getElementById('graphiql');
  var url = root.getAttribute('data-endpoint');
  var fetcher = GraphiQL.createFetcher({ url: url });
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, { fetcher: fetcher, defaultEditorToolsVisibility: true })
  );
})();
