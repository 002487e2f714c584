export function Models() {
  return <section><h1>Models</h1><p className="muted">Not built yet.</p></section>;
}
