// The one import point for @kubernetes/client-node: applies the Node 20 compatibility shim first
// (module evaluation follows import order), then re-exports the library unchanged.
import './node-compat.js';
export * from '@kubernetes/client-node';
