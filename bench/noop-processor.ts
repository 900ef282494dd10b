/**
 * The floor of routing on the body through ext_proc: a processor that reads nothing and always
 * names the same backend, on the router's own gRPC layer. What Envoy + router costs beyond this
 * is the router's own work; what this costs beyond Envoy alone is the mechanism itself
 * (buffering the body, sending it over gRPC, one message each way).
 *   tsx bench/noop-processor.ts PORT MODEL ENDPOINT
 */
import { ExternalProcessorService, ProcessingRequest, ProcessingResponse } from '../src/gen/envoy/service/ext_proc/v3/external_processor.js';
import { routeResponse } from '../src/extproc/responses.js';
import { startGrpcServer } from '../src/grpc/server.js';
import { DESTINATION_HEADER, LB_METADATA_NAMESPACE, ROUTER_METADATA_NAMESPACE } from '../src/contract/envoy.js';

const [port, model, endpoint] = process.argv.slice(2) as [string, string, string];
const pick = routeResponse('requestBody', {
  setHeaders: {},
  removeHeaders: [],
  dynamicMetadata: { [LB_METADATA_NAMESPACE]: { [DESTINATION_HEADER]: endpoint }, [ROUTER_METADATA_NAMESPACE]: { model } },
});
const server = await startGrpcServer({
  host: '127.0.0.1',
  port: Number(port),
  maxMessageBytes: 64 * 1024 * 1024,
  methods: [
    {
      path: ExternalProcessorService.process.path,
      requests: ProcessingRequest,
      responses: ProcessingResponse,
      handler: (call) => {
        call.on('data', (m: ProcessingRequest) => {
          if (m.request?.$case === 'requestBody' && m.request.value.endOfStream) call.write(pick);
        });
        call.on('end', () => call.end());
      },
    },
  ],
});
console.log(`no-op processor on ${server.port}`);
process.on('SIGTERM', () => void server.close(0).then(() => process.exit(0)));
