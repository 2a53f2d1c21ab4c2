// The TypeScript client's smoke test (run by tests/integration/contract/test_sdks.py): types generated from
// Conduit's OpenAPI document by openapi-typescript (schema.d.ts, written next to this file at test time), calls
// made with openapi-fetch. Compiled with tsc --strict, so the types of bodies, answers and errors are checked.
// Prints one JSON line: what a user of the client would see.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

declare const process: { env: Record<string, string | undefined> }; // no @types/node needed

type Task = components["schemas"]["Task"];
type ErrorBody = components["schemas"]["Error"];

const baseUrl = process.env.CONDUIT_URL!;
const client = (key: string) => createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${key}` } });
const funded = client(process.env.CONDUIT_KEY!);
const broke = client(process.env.CONDUIT_BROKE_KEY!);
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);

async function pollUntilDone(id: string): Promise<Task> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const { data, error } = await funded.GET("/v1/tasks/{task_id}", { params: { path: { task_id: id } } });
    if (error) throw new Error(`GET /v1/tasks/${id}: ${error.error.code}`);
    if (TERMINAL.has(data.status)) return data;
    if (Date.now() > deadline) throw new Error(`task ${id} still ${data.status}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const created = await funded.POST("/v1/tasks", {
  body: { model: "flux-schnell", input: { prompt: "a lighthouse at dusk", width: 256, height: 256 } },
});
if (!created.data) throw new Error(`createTask answered ${created.response.status}`);
const done = await pollUntilDone(created.data.id);

const account = await funded.GET("/v1/account");
if (!account.data) throw new Error(`getAccount answered ${account.response.status}`);

const refused = await broke.POST("/v1/tasks", { body: { model: "flux-schnell", input: { prompt: "no credits" } } });
const refusal: ErrorBody | undefined = refused.error;

console.log(
  JSON.stringify({
    created: { status: created.response.status, task_status: created.data.status },
    done: { status: done.status, charged: done.credits.charged, outputs: done.outputs.map((o) => o.content_type) },
    balance: { available: account.data.balance.available, held: account.data.balance.held },
    refused: { status: refused.response.status, type: refusal?.error.type, code: refusal?.error.code },
  }),
);
