/** Types of contract.mjs for the TypeScript bootstraps. */
export declare const HEALTH_PATH: string;
export declare const STATE_PATH: string;

export interface ExecutionContext {
  waitUntil(promise: unknown): void;
  passThroughOnException(): void;
}

export interface Contract {
  env: Readonly<Record<string, string>>;
  context(): ExecutionContext;
  platformAnswer(pathname: string, named: string | null | undefined, probe?: string | null): Response | undefined;
  idle(ms: number): Promise<void>;
  failure(error: unknown): Response;
  run(request: Request, handle: () => Response | Promise<Response>): Promise<Response>;
}

export declare function createContract(readEnv: (name: string) => string | undefined): Contract;
