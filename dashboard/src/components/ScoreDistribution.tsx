// How the scored leads spread over 0–100: a histogram of /v1/leads/distribution's bins,
// each bar in the colour of the grade its lower edge falls in.
import { memo, useMemo } from "react";
import { Bar, BarChart, CartesianGrid, Cell, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";

import type { Distribution } from "../api/types";
import { fmtInt, GRADE_COLORS } from "../format";
import { gradeOf } from "./grades";
import "./overview.css";

/** Drawn again only when the distribution changes (a refetch with other counts). */
export const ScoreDistribution = memo(function ScoreDistribution({
  distribution,
  height = 220,
}: {
  distribution: Distribution;
  height?: number;
}) {
  const data = useMemo(
    () =>
      distribution.bins.map((bin) => ({
        ...bin,
        label: `${bin.from}–${bin.to}`,
        grade: gradeOf(bin.from, distribution.thresholds),
      })),
    [distribution],
  );
  return (
    <div className="score-distribution" role="img" aria-label={`Histogram of ${fmtInt(distribution.total)} lead scores`}>
      <ResponsiveContainer width="100%" height={height}>
        <BarChart data={data} margin={{ top: 6, right: 8, bottom: 4, left: 0 }} barCategoryGap={1}>
          <CartesianGrid vertical={false} stroke="#eef2f7" />
          <XAxis dataKey="from" tick={{ fontSize: 11, fill: "#64748b" }} interval={1} tickLine={false} />
          <YAxis tick={{ fontSize: 11, fill: "#64748b" }} width={44} allowDecimals={false} tickFormatter={(n: number) => fmtInt(n)} />
          <Tooltip
            cursor={{ fill: "#f1f5f9" }}
            formatter={(value) => [fmtInt(Number(value)), "leads"]}
            labelFormatter={(_, payload) => {
              const bin = payload?.[0]?.payload as (typeof data)[number] | undefined;
              return bin ? `score ${bin.label} (grade ${bin.grade})` : "";
            }}
          />
          <Bar dataKey="count" isAnimationActive={false}>
            {data.map((bin) => (
              <Cell key={bin.from} fill={GRADE_COLORS[bin.grade]} />
            ))}
          </Bar>
        </BarChart>
      </ResponsiveContainer>
      <p className="muted dist-caption">Score (x) · number of leads (y) · bar colour = grade</p>
    </div>
  );
});
