// The three Trends charts and the conversion table.
import {
  Bar,
  BarChart,
  CartesianGrid,
  Cell,
  ComposedChart,
  Legend,
  Line,
  LineChart,
  ReferenceLine,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";

import { GRADES } from "../../api/types";
import { FAMILY_COLORS, GRADE_COLORS, fmtInt, fmtNum, fmtPct } from "../../format";
import { MIN_OUTCOMES, type ConversionRow, type ShareRow } from "./trendsMath";

/** Colours for families format.ts does not name (the API may add some). */
const EXTRA_COLORS = ["#0f766e", "#9333ea", "#ca8a04", "#475569", "#be123c", "#4d7c0f"];

export function familyColor(name: string, index: number): string {
  if (FAMILY_COLORS[name]) return FAMILY_COLORS[name];
  if (name === "quality" && FAMILY_COLORS.data_quality) return FAMILY_COLORS.data_quality;
  return EXTRA_COLORS[index % EXTRA_COLORS.length];
}

export function familyLabel(name: string): string {
  return name.replace(/_/g, " ");
}

const AXIS = { fontSize: 11, fill: "#64748b" };

/** Grade shares per bucket as stacked bars, the median score as a line. */
export function ScoreShareChart({ rows }: { rows: ShareRow[] }) {
  return (
    <ResponsiveContainer width="100%" height={280}>
      <ComposedChart data={rows} margin={{ top: 12, right: 8, bottom: 0, left: 0 }} barCategoryGap={rows.length > 60 ? 0 : 2}>
        <CartesianGrid stroke="#eef2f7" vertical={false} />
        <XAxis dataKey="label" tick={AXIS} minTickGap={24} />
        <YAxis yAxisId="share" domain={[0, 100]} ticks={[0, 25, 50, 75, 100]} allowDataOverflow tick={AXIS} unit=" %" width={48} />
        <YAxis yAxisId="score" orientation="right" domain={[0, 100]} ticks={[0, 25, 50, 75, 100]} allowDataOverflow tick={AXIS} width={36} />
        <Tooltip content={<ShareTooltip />} />
        <Legend wrapperStyle={{ fontSize: 12 }} />
        {[...GRADES].reverse().map((grade) => (
          <Bar key={grade} yAxisId="share" dataKey={grade} name={`grade ${grade}`} stackId="g" fill={GRADE_COLORS[grade]} isAnimationActive={false} />
        ))}
        <Line yAxisId="score" dataKey="median" name="median score (right axis)" stroke="#0f172a" strokeWidth={2} dot={false} connectNulls isAnimationActive={false} />
        <Line yAxisId="score" dataKey="mean" name="mean score (right axis)" stroke="#0f172a" strokeWidth={1.5} strokeDasharray="4 3" dot={false} connectNulls isAnimationActive={false} />
      </ComposedChart>
    </ResponsiveContainer>
  );
}

function ShareTooltip({ active, payload }: { active?: boolean; payload?: { payload: ShareRow }[] }) {
  if (!active || !payload?.length) return null;
  const row = payload[0].payload;
  return (
    <div className="kit-tip">
      <strong>{row.label}</strong>
      <div>{fmtInt(row.scores)} scores</div>
      {row.scores > 0 && (
        <>
          {GRADES.map((g) => (
            <div key={g}>
              <span className={`grade ${g}`}>{g}</span> {fmtNum(row[g], 1)} %
            </div>
          ))}
          <div>
            median ≈ {fmtNum(row.median, 0)}, mean ≈ {fmtNum(row.mean, 0)}
          </div>
        </>
      )}
    </div>
  );
}

/** Scores published per bucket (the volume under the shares). */
export function VolumeChart({ rows }: { rows: ShareRow[] }) {
  return (
    <ResponsiveContainer width="100%" height={90}>
      <BarChart data={rows} margin={{ top: 4, right: 44, bottom: 0, left: 0 }} barCategoryGap={rows.length > 60 ? 0 : 2}>
        <XAxis dataKey="label" hide />
        <YAxis tick={AXIS} width={48} allowDecimals={false} />
        <Tooltip formatter={(value) => [fmtInt(Number(value)), "scores"]} labelStyle={{ fontWeight: 600 }} />
        <Bar dataKey="scores" fill="#94a3b8" isAnimationActive={false} />
      </BarChart>
    </ResponsiveContainer>
  );
}

/** Conversion rate per grade, the overall rate as a dashed line; thin grades paler. */
export function ConversionChart({ rows, overall }: { rows: ConversionRow[]; overall: number | null }) {
  const data = rows.map((row) => ({ ...row, pct: row.rate === null ? null : row.rate * 100 }));
  return (
    <ResponsiveContainer width="100%" height={200}>
      <BarChart data={data} margin={{ top: 12, right: 8, bottom: 0, left: 0 }}>
        <CartesianGrid stroke="#eef2f7" vertical={false} />
        <XAxis dataKey="grade" tick={AXIS} />
        <YAxis tick={AXIS} unit=" %" width={48} domain={[0, (max: number) => Math.max(10, Math.ceil(max / 10) * 10)]} />
        <Tooltip
          formatter={(value, _name, item) => {
            const row = (item as { payload: ConversionRow }).payload;
            return [`${fmtNum(Number(value), 1)} % of ${fmtInt(row.n)}`, "converted"];
          }}
        />
        {overall !== null && (
          <ReferenceLine y={overall * 100} stroke="#0f172a" strokeDasharray="4 3" label={{ value: `overall ${fmtPct(overall, 1)}`, fontSize: 11, position: "insideTopRight" }} />
        )}
        <Bar dataKey="pct" isAnimationActive={false}>
          {data.map((row) => (
            <Cell key={row.grade} fill={GRADE_COLORS[row.grade]} fillOpacity={row.enough ? 1 : 0.35} />
          ))}
        </Bar>
      </BarChart>
    </ResponsiveContainer>
  );
}

export function ConversionTable({ rows, overall }: { rows: ConversionRow[]; overall: { n: number; converted: number; rate: number | null } }) {
  return (
    <table className="data" data-testid="conversion-table">
      <thead>
        <tr>
          <th>Grade</th>
          <th className="num">Outcomes</th>
          <th className="num">Converted</th>
          <th className="num">Rate</th>
          <th className="num">Lift vs overall</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={row.grade} data-testid={`conversion-${row.grade}`}>
            <td>
              <span className={`grade ${row.grade}`}>{row.grade}</span>
            </td>
            <td className="num">{fmtInt(row.n)}</td>
            <td className="num">{fmtInt(row.converted)}</td>
            <td className={row.enough ? "num" : "num muted"}>{fmtPct(row.rate, 1)}</td>
            <td className="num">
              {row.enough ? (
                <strong>{row.lift === null ? "—" : `${fmtNum(row.lift, 2)}×`}</strong>
              ) : (
                <span className="muted" title={`fewer than ${MIN_OUTCOMES} outcomes: the rate is mostly noise`}>
                  not enough outcomes{row.lift !== null ? ` (${fmtNum(row.lift, 2)}×)` : ""}
                </span>
              )}
            </td>
          </tr>
        ))}
      </tbody>
      <tfoot>
        <tr>
          <td>All</td>
          <td className="num">{fmtInt(overall.n)}</td>
          <td className="num">{fmtInt(overall.converted)}</td>
          <td className="num">{fmtPct(overall.rate, 1)}</td>
          <td className="num">1.00×</td>
        </tr>
      </tfoot>
    </table>
  );
}

/** Mean points per factor family per bucket, one line each. */
export function FamilyChart({ rows, families }: { rows: Record<string, number | string | null>[]; families: string[] }) {
  // A line needs two points: with few buckets holding data, draw each value as a dot too.
  const withData = rows.filter((row) => families.some((name) => typeof row[name] === "number")).length;
  const dot = withData <= 3 ? { r: 3 } : false;
  return (
    <ResponsiveContainer width="100%" height={260}>
      <LineChart data={rows} margin={{ top: 8, right: 8, bottom: 0, left: 0 }}>
        <CartesianGrid stroke="#eef2f7" vertical={false} />
        <XAxis dataKey="label" tick={AXIS} minTickGap={24} />
        <YAxis tick={AXIS} width={40} />
        <ReferenceLine y={0} stroke="#94a3b8" />
        <Tooltip formatter={(value, name) => [`${fmtNum(Number(value), 1)} points`, familyLabel(String(name))]} />
        <Legend wrapperStyle={{ fontSize: 12 }} formatter={(value) => familyLabel(String(value))} />
        {families.map((name, i) => (
          <Line key={name} dataKey={name} stroke={familyColor(name, i)} strokeWidth={2} dot={dot} connectNulls isAnimationActive={false} />
        ))}
      </LineChart>
    </ResponsiveContainer>
  );
}
