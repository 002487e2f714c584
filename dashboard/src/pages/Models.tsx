// Models: versions (details, promote, rollback), drift, retraining decisions and A/B test
// records, as sub-tabs under /models.
import { NavLink, Route, Routes } from "react-router-dom";

import { DriftTab } from "../components/models/Drift";
import { ExperimentsTab } from "../components/models/Experiments";
import { RetrainingTab } from "../components/models/Retraining";
import { VersionsTab } from "../components/models/Versions";
import "../components/models/models.css";

const TABS: [string, string][] = [
  ["/models", "Versions"],
  ["/models/drift", "Drift"],
  ["/models/retraining", "Retraining"],
  ["/models/ab", "A/B tests"],
];

export function Models() {
  return (
    <section className="models">
      <h1>Models</h1>
      <nav className="subtabs" aria-label="Models">
        {TABS.map(([to, label]) => (
          <NavLink key={to} to={to} end className={({ isActive }) => (isActive ? "active" : undefined)}>
            {label}
          </NavLink>
        ))}
      </nav>
      <Routes>
        <Route index element={<VersionsTab />} />
        <Route path="drift" element={<DriftTab />} />
        <Route path="retraining" element={<RetrainingTab />} />
        <Route path="ab" element={<ExperimentsTab />} />
        <Route
          path="*"
          element={
            <p className="muted">
              No such tab. <NavLink to="/models">Back to the versions</NavLink>.
            </p>
          }
        />
      </Routes>
    </section>
  );
}
