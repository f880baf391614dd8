// Original file: proto/allocator.proto


export interface Address {
  'pool'?: (string);
  'ip'?: (string);
  'prefixLength'?: (number);
  'gateway'?: (string);
  'offset'?: (string);
}

export interface Address__Output {
  'pool': (string);
  'ip': (string);
  'prefixLength': (number);
  'gateway': (string);
  'offset': (string);
}
