import { readFileSync } from 'node:fs';

/** The gateway's HTTP API as the CLI uses it. Every failure becomes a CliError with one short line. */

export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 'CLI_ERROR',
  ) {
    super(message);
  }
}

export interface ApiOptions {
  apiUrl: string;
  token: string;
  /** A PEM file of the certificate authority that signed an https:// gateway's certificate (--ca-file). */
  caFile?: string;
}

export class Api {
  private readonly tls?: { ca: string };

  constructor(private readonly options: ApiOptions) {
    if (options.caFile) {
      try {
        this.tls = { ca: readFileSync(options.caFile, 'utf8') };
      } catch (error) {
        throw new CliError(`cannot read the CA file ${options.caFile}: ${(error as Error).message}`);
      }
    }
  }

  url(path: string): string {
    return `${this.options.apiUrl.replace(/\/+$/, '')}${path}`;
  }

  /** Sends a request; connection failures and error answers become CliErrors. */
  async request(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('authorization', `Bearer ${this.options.token}`);
    let response: Response;
    try {
      response = await fetch(this.url(path), { ...init, headers, ...(this.tls ? { tls: this.tls } : {}) });
    } catch (error) {
      const message = (error as Error).message;
      const code = (error as { code?: string }).code ?? '';
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|certificate/i.test(`${code} ${message}`)) {
        throw new CliError(
          `the gateway at ${this.options.apiUrl} has a certificate this machine does not trust (${code || message}); pass --ca-file with the CA that signed it`,
          'TLS',
        );
      }
      throw new CliError(`cannot reach the gateway at ${this.options.apiUrl} (${message}); is it running? (npm start)`, 'UNREACHABLE');
    }
    return response;
  }

  async json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this.request(path, init);
    if (!response.ok) throw await errorFrom(response);
    return (await response.json()) as T;
  }
}

/** The gateway's `{ error: { code, message } }` as a CliError; any other answer by its status. */
export async function errorFrom(response: Response): Promise<CliError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.message) return new CliError(body.error.message, body.error.code);
  } catch {
    // not JSON
  }
  return new CliError(`the gateway answered HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}`, `HTTP_${response.status}`);
}
