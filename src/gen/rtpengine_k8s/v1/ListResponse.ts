// Original file: proto/allocator.proto

import type { Allocation as _rtpengine_k8s_v1_Allocation, Allocation__Output as _rtpengine_k8s_v1_Allocation__Output } from '../../rtpengine_k8s/v1/Allocation.js';

export interface ListResponse {
  'node'?: (string);
  'allocations'?: (_rtpengine_k8s_v1_Allocation)[];
  'tablesFree'?: (number);
  'tablesTotal'?: (number);
}

export interface ListResponse__Output {
  'node': (string);
  'allocations': (_rtpengine_k8s_v1_Allocation__Output)[];
  'tablesFree': (number);
  'tablesTotal': (number);
}
