export { coldStart } from './cold-start';
export { deployFunction } from './deploy';
export { functionEntity } from './function-entity';
export { collectRegistryGarbage } from './registry-gc';
export { callFunction } from './call';
