export { MemoryPins } from '../../src/client/pins.js';
