import { Link } from "react-router-dom";

export function NotFound() {
  return (
    <section className="card">
      <h1>Page not found</h1>
      <p>
        There is no such page. <Link to="/">Back to the overview</Link>.
      </p>
    </section>
  );
}
