// Original file: proto/allocator.proto

import type { PodRef as _rtpengine_k8s_v1_PodRef, PodRef__Output as _rtpengine_k8s_v1_PodRef__Output } from '../../rtpengine_k8s/v1/PodRef.js';
import type { Address as _rtpengine_k8s_v1_Address, Address__Output as _rtpengine_k8s_v1_Address__Output } from '../../rtpengine_k8s/v1/Address.js';
import type { Long } from '@grpc/proto-loader';

export interface Allocation {
  'pod'?: (_rtpengine_k8s_v1_PodRef | null);
  'node'?: (string);
  'table'?: (number);
  'addresses'?: (_rtpengine_k8s_v1_Address)[];
  'state'?: (string);
  'createdAtMs'?: (number | string | Long);
  'renewedAtMs'?: (number | string | Long);
  'leaseExpiresAtMs'?: (number | string | Long);
  'leaseTtlMs'?: (number);
}

export interface Allocation__Output {
  'pod': (_rtpengine_k8s_v1_PodRef__Output | null);
  'node': (string);
  'table': (number);
  'addresses': (_rtpengine_k8s_v1_Address__Output)[];
  'state': (string);
  'createdAtMs': (number);
  'renewedAtMs': (number);
  'leaseExpiresAtMs': (number);
  'leaseTtlMs': (number);
}
