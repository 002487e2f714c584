export function Batch() {
  return <section><h1>Batch</h1><p className="muted">Not built yet.</p></section>;
}
